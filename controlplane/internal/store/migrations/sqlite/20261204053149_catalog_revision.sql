-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_catalog_entries" table
CREATE TABLE `new_catalog_entries` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `version` text NOT NULL, `title` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `transport` text NOT NULL, `url` text NOT NULL DEFAULT (''), `package_ecosystem` text NOT NULL DEFAULT (''), `package_name` text NOT NULL DEFAULT (''), `package_version` text NOT NULL DEFAULT (''), `package_integrity` text NOT NULL DEFAULT (''), `package_bin` text NOT NULL DEFAULT (''), `args` json NULL, `credentials` json NULL, `source` text NOT NULL DEFAULT (''), `status` text NOT NULL DEFAULT ('pending'), `requested_by` text NOT NULL, `requester_key` text NOT NULL DEFAULT (''), `approvals_required` integer NOT NULL, `decisions` json NULL, `revision` integer NOT NULL DEFAULT (0), `decided_at` datetime NULL, `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `catalog_entries_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "catalog_entries" to new temporary table "new_catalog_entries"
INSERT INTO `new_catalog_entries` (`id`, `created_at`, `updated_at`, `name`, `version`, `title`, `description`, `transport`, `url`, `package_ecosystem`, `package_name`, `package_version`, `package_integrity`, `package_bin`, `args`, `credentials`, `source`, `status`, `requested_by`, `requester_key`, `approvals_required`, `decisions`, `decided_at`, `tenant_id`) SELECT `id`, `created_at`, `updated_at`, `name`, `version`, `title`, `description`, `transport`, `url`, `package_ecosystem`, `package_name`, `package_version`, `package_integrity`, `package_bin`, `args`, `credentials`, `source`, `status`, `requested_by`, `requester_key`, `approvals_required`, `decisions`, `decided_at`, `tenant_id` FROM `catalog_entries`;
-- drop "catalog_entries" table after copying rows
DROP TABLE `catalog_entries`;
-- rename temporary table "new_catalog_entries" to "catalog_entries"
ALTER TABLE `new_catalog_entries` RENAME TO `catalog_entries`;
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
-- reverse: create "new_catalog_entries" table
DROP TABLE `new_catalog_entries`;
