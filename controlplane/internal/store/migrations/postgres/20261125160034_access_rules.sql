-- +goose Up
-- modify "gateways" table
ALTER TABLE "gateways" ADD COLUMN "client_auth_required" boolean NOT NULL DEFAULT false;
-- create "access_rules" table
CREATE TABLE "access_rules" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "gateway_id" uuid NOT NULL, "position" bigint NOT NULL, "principal" character varying NOT NULL, "virtual_server" character varying NOT NULL, "tool_pattern" character varying NOT NULL, "effect" character varying NOT NULL, "condition" character varying NOT NULL DEFAULT '', "description" character varying NOT NULL DEFAULT '', "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "access_rules_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "accessrule_gateway_id_position" to table: "access_rules"
CREATE INDEX "accessrule_gateway_id_position" ON "access_rules" ("gateway_id", "position");
-- create index "accessrule_tenant_id" to table: "access_rules"
CREATE INDEX "accessrule_tenant_id" ON "access_rules" ("tenant_id");
-- create "client_keys" table
CREATE TABLE "client_keys" ("id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "updated_at" timestamptz NOT NULL, "name" character varying NOT NULL, "groups" jsonb NULL, "secret_hash" character varying NOT NULL, "revoked_at" timestamptz NULL, "tenant_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "client_keys_tenants_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION);
-- create index "client_keys_secret_hash_key" to table: "client_keys"
CREATE UNIQUE INDEX "client_keys_secret_hash_key" ON "client_keys" ("secret_hash");
-- create index "clientkey_tenant_id" to table: "client_keys"
CREATE INDEX "clientkey_tenant_id" ON "client_keys" ("tenant_id");
-- create index "clientkey_tenant_id_name" to table: "client_keys"
CREATE UNIQUE INDEX "clientkey_tenant_id_name" ON "client_keys" ("tenant_id", "name");

-- +goose Down
-- reverse: create index "clientkey_tenant_id_name" to table: "client_keys"
DROP INDEX "clientkey_tenant_id_name";
-- reverse: create index "clientkey_tenant_id" to table: "client_keys"
DROP INDEX "clientkey_tenant_id";
-- reverse: create index "client_keys_secret_hash_key" to table: "client_keys"
DROP INDEX "client_keys_secret_hash_key";
-- reverse: create "client_keys" table
DROP TABLE "client_keys";
-- reverse: create index "accessrule_tenant_id" to table: "access_rules"
DROP INDEX "accessrule_tenant_id";
-- reverse: create index "accessrule_gateway_id_position" to table: "access_rules"
DROP INDEX "accessrule_gateway_id_position";
-- reverse: create "access_rules" table
DROP TABLE "access_rules";
-- reverse: modify "gateways" table
ALTER TABLE "gateways" DROP COLUMN "client_auth_required";
