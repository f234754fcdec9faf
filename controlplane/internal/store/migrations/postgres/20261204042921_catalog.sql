-- +goose Up
-- modify "upstreams" table
ALTER TABLE "upstreams" ADD COLUMN "catalog_entry" character varying NOT NULL DEFAULT '';
-- create "catalog_entries" table
CREATE TABLE "catalog_entries" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "version" character varying NOT NULL, "title" character varying NOT NULL DEFAULT '', "description" character varying NOT NULL DEFAULT '', "transport" character varying NOT NULL, "url" character varying NOT NULL DEFAULT '', "package_ecosystem" character varying NOT NULL DEFAULT '', "package_name" character varying NOT NULL DEFAULT '', "package_version" character varying NOT NULL DEFAULT '', "package_integrity" character varying NOT NULL DEFAULT '', "package_bin" character varying NOT NULL DEFAULT '', "args" jsonb NULL, "credentials" jsonb NULL, "source" character varying NOT NULL DEFAULT '', "status" character varying NOT NULL DEFAULT 'pending', "requested_by" character varying NOT NULL, "requester_key" character varying NOT NULL DEFAULT '', "approvals_required" bigint NOT NULL, "decisions" jsonb NULL, "decided_at" timestamptz NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "catalog_entries_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "catalogentry_tenant_id" to table: "catalog_entries"
CREATE INDEX "catalogentry_tenant_id" ON "catalog_entries" ("tenant_id");
-- create index "catalogentry_tenant_id_name_version" to table: "catalog_entries"
CREATE UNIQUE INDEX "catalogentry_tenant_id_name_version" ON "catalog_entries" ("tenant_id", "name", "version");

-- +goose Down
-- reverse: create index "catalogentry_tenant_id_name_version" to table: "catalog_entries"
DROP INDEX "catalogentry_tenant_id_name_version";
-- reverse: create index "catalogentry_tenant_id" to table: "catalog_entries"
DROP INDEX "catalogentry_tenant_id";
-- reverse: create "catalog_entries" table
DROP TABLE "catalog_entries";
-- reverse: modify "upstreams" table
ALTER TABLE "upstreams" DROP COLUMN "catalog_entry";
