-- +goose Up
-- modify "agents" table
ALTER TABLE "agents" ADD COLUMN "applied_at" timestamptz NULL;
-- modify "tenants" table
ALTER TABLE "tenants" ADD COLUMN "approvals_required" bigint NOT NULL DEFAULT 1;
-- modify "tool_versions" table
ALTER TABLE "tool_versions" ADD COLUMN "findings" jsonb NULL;
-- create "change_requests" table
CREATE TABLE "change_requests" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "gateway_id" uuid NOT NULL, "kind" character varying NOT NULL, "status" character varying NOT NULL DEFAULT 'pending', "from_sha256" character varying NOT NULL DEFAULT '', "to_sha256" character varying NOT NULL DEFAULT '', "requested_by" character varying NOT NULL, "requester_key" character varying NOT NULL DEFAULT '', "comment" character varying NOT NULL DEFAULT '', "approvals_required" bigint NOT NULL, "decided_at" timestamptz NULL, "decided_by" character varying NOT NULL DEFAULT '', "policy_version" bigint NOT NULL DEFAULT 0, "superseded_by" uuid NULL, "tenant_id" uuid NOT NULL, "tool_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "change_requests_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "change_requests_tools_change_requests" FOREIGN KEY ("tool_id") REFERENCES "tools" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "changerequest_tenant_id" to table: "change_requests"
CREATE INDEX "changerequest_tenant_id" ON "change_requests" ("tenant_id");
-- create index "changerequest_tenant_id_status" to table: "change_requests"
CREATE INDEX "changerequest_tenant_id_status" ON "change_requests" ("tenant_id", "status");
-- create index "changerequest_tool_id_status" to table: "change_requests"
CREATE INDEX "changerequest_tool_id_status" ON "change_requests" ("tool_id", "status");
-- create "approvals" table
CREATE TABLE "approvals" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "decision" character varying NOT NULL, "actor_key" character varying NOT NULL, "actor" character varying NOT NULL, "comment" character varying NOT NULL DEFAULT '', "tenant_id" uuid NOT NULL, "change_request_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "approvals_change_requests_approvals" FOREIGN KEY ("change_request_id") REFERENCES "change_requests" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION, CONSTRAINT "approvals_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "approval_change_request_id_actor_key" to table: "approvals"
CREATE UNIQUE INDEX "approval_change_request_id_actor_key" ON "approvals" ("change_request_id", "actor_key");
-- create index "approval_tenant_id" to table: "approvals"
CREATE INDEX "approval_tenant_id" ON "approvals" ("tenant_id");

-- +goose Down
-- reverse: create index "approval_tenant_id" to table: "approvals"
DROP INDEX "approval_tenant_id";
-- reverse: create index "approval_change_request_id_actor_key" to table: "approvals"
DROP INDEX "approval_change_request_id_actor_key";
-- reverse: create "approvals" table
DROP TABLE "approvals";
-- reverse: create index "changerequest_tool_id_status" to table: "change_requests"
DROP INDEX "changerequest_tool_id_status";
-- reverse: create index "changerequest_tenant_id_status" to table: "change_requests"
DROP INDEX "changerequest_tenant_id_status";
-- reverse: create index "changerequest_tenant_id" to table: "change_requests"
DROP INDEX "changerequest_tenant_id";
-- reverse: create "change_requests" table
DROP TABLE "change_requests";
-- reverse: modify "tool_versions" table
ALTER TABLE "tool_versions" DROP COLUMN "findings";
-- reverse: modify "tenants" table
ALTER TABLE "tenants" DROP COLUMN "approvals_required";
-- reverse: modify "agents" table
ALTER TABLE "agents" DROP COLUMN "applied_at";
