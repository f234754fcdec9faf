-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_gateways" table
CREATE TABLE `new_gateways` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `client_auth_required` bool NOT NULL DEFAULT (false), `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `gateways_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "gateways" to new temporary table "new_gateways"
INSERT INTO `new_gateways` (`id`, `created_at`, `updated_at`, `name`, `tenant_id`) SELECT `id`, `created_at`, `updated_at`, `name`, `tenant_id` FROM `gateways`;
-- drop "gateways" table after copying rows
DROP TABLE `gateways`;
-- rename temporary table "new_gateways" to "gateways"
ALTER TABLE `new_gateways` RENAME TO `gateways`;
-- create index "gateway_tenant_id" to table: "gateways"
CREATE INDEX `gateway_tenant_id` ON `gateways` (`tenant_id`);
-- create index "gateway_tenant_id_name" to table: "gateways"
CREATE UNIQUE INDEX `gateway_tenant_id_name` ON `gateways` (`tenant_id`, `name`);
-- create "access_rules" table
CREATE TABLE `access_rules` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `gateway_id` uuid NOT NULL, `position` integer NOT NULL, `principal` text NOT NULL, `virtual_server` text NOT NULL, `tool_pattern` text NOT NULL, `effect` text NOT NULL, `condition` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `access_rules_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- create index "accessrule_tenant_id" to table: "access_rules"
CREATE INDEX `accessrule_tenant_id` ON `access_rules` (`tenant_id`);
-- create index "accessrule_gateway_id_position" to table: "access_rules"
CREATE INDEX `accessrule_gateway_id_position` ON `access_rules` (`gateway_id`, `position`);
-- create "client_keys" table
CREATE TABLE `client_keys` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `groups` json NULL, `secret_hash` text NOT NULL, `revoked_at` datetime NULL, `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `client_keys_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- create index "client_keys_secret_hash_key" to table: "client_keys"
CREATE UNIQUE INDEX `client_keys_secret_hash_key` ON `client_keys` (`secret_hash`);
-- create index "clientkey_tenant_id" to table: "client_keys"
CREATE INDEX `clientkey_tenant_id` ON `client_keys` (`tenant_id`);
-- create index "clientkey_tenant_id_name" to table: "client_keys"
CREATE UNIQUE INDEX `clientkey_tenant_id_name` ON `client_keys` (`tenant_id`, `name`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "clientkey_tenant_id_name" to table: "client_keys"
DROP INDEX `clientkey_tenant_id_name`;
-- reverse: create index "clientkey_tenant_id" to table: "client_keys"
DROP INDEX `clientkey_tenant_id`;
-- reverse: create index "client_keys_secret_hash_key" to table: "client_keys"
DROP INDEX `client_keys_secret_hash_key`;
-- reverse: create "client_keys" table
DROP TABLE `client_keys`;
-- reverse: create index "accessrule_gateway_id_position" to table: "access_rules"
DROP INDEX `accessrule_gateway_id_position`;
-- reverse: create index "accessrule_tenant_id" to table: "access_rules"
DROP INDEX `accessrule_tenant_id`;
-- reverse: create "access_rules" table
DROP TABLE `access_rules`;
-- reverse: create index "gateway_tenant_id_name" to table: "gateways"
DROP INDEX `gateway_tenant_id_name`;
-- reverse: create index "gateway_tenant_id" to table: "gateways"
DROP INDEX `gateway_tenant_id`;
-- reverse: create "new_gateways" table
DROP TABLE `new_gateways`;
