-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_gateways" table
CREATE TABLE `new_gateways` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `client_auth_required` bool NOT NULL DEFAULT (false), `rate_principal_per_minute` integer NOT NULL DEFAULT (0), `rate_tool_per_minute` integer NOT NULL DEFAULT (0), `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `gateways_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "gateways" to new temporary table "new_gateways"
INSERT INTO `new_gateways` (`id`, `created_at`, `updated_at`, `name`, `client_auth_required`, `tenant_id`) SELECT `id`, `created_at`, `updated_at`, `name`, `client_auth_required`, `tenant_id` FROM `gateways`;
-- drop "gateways" table after copying rows
DROP TABLE `gateways`;
-- rename temporary table "new_gateways" to "gateways"
ALTER TABLE `new_gateways` RENAME TO `gateways`;
-- create index "gateway_tenant_id" to table: "gateways"
CREATE INDEX `gateway_tenant_id` ON `gateways` (`tenant_id`);
-- create index "gateway_tenant_id_name" to table: "gateways"
CREATE UNIQUE INDEX `gateway_tenant_id_name` ON `gateways` (`tenant_id`, `name`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "gateway_tenant_id_name" to table: "gateways"
DROP INDEX `gateway_tenant_id_name`;
-- reverse: create index "gateway_tenant_id" to table: "gateways"
DROP INDEX `gateway_tenant_id`;
-- reverse: create "new_gateways" table
DROP TABLE `new_gateways`;
