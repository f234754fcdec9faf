-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_tools" table
CREATE TABLE `new_tools` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `kind` text NOT NULL DEFAULT ('tool'), `name` text NOT NULL, `live_sha256` text NOT NULL DEFAULT (''), `pinned_sha256` text NOT NULL DEFAULT (''), `first_seen` datetime NOT NULL, `last_seen` datetime NOT NULL, `tenant_id` uuid NOT NULL, `upstream_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `tools_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION, CONSTRAINT `tools_upstreams_tools` FOREIGN KEY (`upstream_id`) REFERENCES `upstreams` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "tools" to new temporary table "new_tools"
INSERT INTO `new_tools` (`id`, `created_at`, `updated_at`, `name`, `live_sha256`, `pinned_sha256`, `first_seen`, `last_seen`, `tenant_id`, `upstream_id`) SELECT `id`, `created_at`, `updated_at`, `name`, `live_sha256`, `pinned_sha256`, `first_seen`, `last_seen`, `tenant_id`, `upstream_id` FROM `tools`;
-- drop "tools" table after copying rows
DROP TABLE `tools`;
-- rename temporary table "new_tools" to "tools"
ALTER TABLE `new_tools` RENAME TO `tools`;
-- create index "tool_tenant_id" to table: "tools"
CREATE INDEX `tool_tenant_id` ON `tools` (`tenant_id`);
-- create index "tool_upstream_id_kind_name" to table: "tools"
CREATE UNIQUE INDEX `tool_upstream_id_kind_name` ON `tools` (`upstream_id`, `kind`, `name`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "tool_upstream_id_kind_name" to table: "tools"
DROP INDEX `tool_upstream_id_kind_name`;
-- reverse: create index "tool_tenant_id" to table: "tools"
DROP INDEX `tool_tenant_id`;
-- reverse: create "new_tools" table
DROP TABLE `new_tools`;
