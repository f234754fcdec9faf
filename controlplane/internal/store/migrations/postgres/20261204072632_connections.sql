-- +goose Up
-- create "connections" table
CREATE TABLE "connections" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "gateway_id" uuid NOT NULL, "upstream" character varying NOT NULL, "principal" character varying NOT NULL, "upstream_identity" character varying NOT NULL DEFAULT '', "connected_at" timestamptz NOT NULL, "state" character varying NOT NULL DEFAULT 'connected', "changed_at" timestamptz NOT NULL, "revoked_at" timestamptz NULL, "revoked_by" character varying NOT NULL DEFAULT '', "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "connections_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "connection_gateway_id_upstream_principal" to table: "connections"
CREATE UNIQUE INDEX "connection_gateway_id_upstream_principal" ON "connections" ("gateway_id", "upstream", "principal");
-- create index "connection_tenant_id" to table: "connections"
CREATE INDEX "connection_tenant_id" ON "connections" ("tenant_id");
-- create index "connection_tenant_id_changed_at" to table: "connections"
CREATE INDEX "connection_tenant_id_changed_at" ON "connections" ("tenant_id", "changed_at");

-- +goose Down
-- reverse: create index "connection_tenant_id_changed_at" to table: "connections"
DROP INDEX "connection_tenant_id_changed_at";
-- reverse: create index "connection_tenant_id" to table: "connections"
DROP INDEX "connection_tenant_id";
-- reverse: create index "connection_gateway_id_upstream_principal" to table: "connections"
DROP INDEX "connection_gateway_id_upstream_principal";
-- reverse: create "connections" table
DROP TABLE "connections";
