-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_upstreams" table
CREATE TABLE `new_upstreams` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `transport` text NOT NULL, `url` text NOT NULL DEFAULT (''), `command` text NOT NULL DEFAULT (''), `args` json NULL, `labels` json NULL, `package_ecosystem` text NOT NULL DEFAULT (''), `package_name` text NOT NULL DEFAULT (''), `package_version` text NOT NULL DEFAULT (''), `package_integrity` text NOT NULL DEFAULT (''), `package_bin` text NOT NULL DEFAULT (''), `catalog_entry` text NOT NULL DEFAULT (''), `credential_ref` text NOT NULL DEFAULT (''), `credential_header` text NOT NULL DEFAULT (''), `deny_sampling` bool NOT NULL DEFAULT (false), `deny_elicitation` bool NOT NULL DEFAULT (false), `deny_roots` bool NOT NULL DEFAULT (false), `reachable` bool NOT NULL DEFAULT (false), `last_error` text NOT NULL DEFAULT (''), `gateway_id` uuid NOT NULL, `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `upstreams_gateways_upstreams` FOREIGN KEY (`gateway_id`) REFERENCES `gateways` (`id`) ON DELETE NO ACTION, CONSTRAINT `upstreams_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "upstreams" to new temporary table "new_upstreams"
INSERT INTO `new_upstreams` (`id`, `created_at`, `updated_at`, `name`, `transport`, `url`, `command`, `args`, `labels`, `package_ecosystem`, `package_name`, `package_version`, `package_integrity`, `package_bin`, `credential_ref`, `credential_header`, `deny_sampling`, `deny_elicitation`, `deny_roots`, `reachable`, `last_error`, `gateway_id`, `tenant_id`) SELECT `id`, `created_at`, `updated_at`, `name`, `transport`, `url`, `command`, `args`, `labels`, `package_ecosystem`, `package_name`, `package_version`, `package_integrity`, `package_bin`, `credential_ref`, `credential_header`, `deny_sampling`, `deny_elicitation`, `deny_roots`, `reachable`, `last_error`, `gateway_id`, `tenant_id` FROM `upstreams`;
-- drop "upstreams" table after copying rows
DROP TABLE `upstreams`;
-- rename temporary table "new_upstreams" to "upstreams"
ALTER TABLE `new_upstreams` RENAME TO `upstreams`;
-- create index "upstream_tenant_id" to table: "upstreams"
CREATE INDEX `upstream_tenant_id` ON `upstreams` (`tenant_id`);
-- create index "upstream_gateway_id_name" to table: "upstreams"
CREATE UNIQUE INDEX `upstream_gateway_id_name` ON `upstreams` (`gateway_id`, `name`);
-- create "catalog_entries" table
CREATE TABLE `catalog_entries` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `version` text NOT NULL, `title` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `transport` text NOT NULL, `url` text NOT NULL DEFAULT (''), `package_ecosystem` text NOT NULL DEFAULT (''), `package_name` text NOT NULL DEFAULT (''), `package_version` text NOT NULL DEFAULT (''), `package_integrity` text NOT NULL DEFAULT (''), `package_bin` text NOT NULL DEFAULT (''), `args` json NULL, `credentials` json NULL, `source` text NOT NULL DEFAULT (''), `status` text NOT NULL DEFAULT ('pending'), `requested_by` text NOT NULL, `requester_key` text NOT NULL DEFAULT (''), `approvals_required` integer NOT NULL, `decisions` json NULL, `decided_at` datetime NULL, `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `catalog_entries_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- create index "catalogentry_tenant_id" to table: "catalog_entries"
CREATE INDEX `catalogentry_tenant_id` ON `catalog_entries` (`tenant_id`);
-- create index "catalogentry_tenant_id_name_version" to table: "catalog_entries"
CREATE UNIQUE INDEX `catalogentry_tenant_id_name_version` ON `catalog_entries` (`tenant_id`, `name`, `version`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "catalogentry_tenant_id_name_version" to table: "catalog_entries"
DROP INDEX `catalogentry_tenant_id_name_version`;
-- reverse: create index "catalogentry_tenant_id" to table: "catalog_entries"
DROP INDEX `catalogentry_tenant_id`;
-- reverse: create "catalog_entries" table
DROP TABLE `catalog_entries`;
-- reverse: create index "upstream_gateway_id_name" to table: "upstreams"
DROP INDEX `upstream_gateway_id_name`;
-- reverse: create index "upstream_tenant_id" to table: "upstreams"
DROP INDEX `upstream_tenant_id`;
-- reverse: create "new_upstreams" table
DROP TABLE `new_upstreams`;
