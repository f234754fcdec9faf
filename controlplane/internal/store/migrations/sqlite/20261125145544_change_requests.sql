-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- add column "applied_at" to table: "agents"
ALTER TABLE `agents` ADD COLUMN `applied_at` datetime NULL;
-- create "new_tenants" table
CREATE TABLE `new_tenants` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `slug` text NOT NULL, `signing_private_key` blob NOT NULL, `signing_public_key` blob NOT NULL, `approvals_required` integer NOT NULL DEFAULT (1), PRIMARY KEY (`id`));
-- copy rows from old table "tenants" to new temporary table "new_tenants"
INSERT INTO `new_tenants` (`id`, `created_at`, `updated_at`, `name`, `slug`, `signing_private_key`, `signing_public_key`) SELECT `id`, `created_at`, `updated_at`, `name`, `slug`, `signing_private_key`, `signing_public_key` FROM `tenants`;
-- drop "tenants" table after copying rows
DROP TABLE `tenants`;
-- rename temporary table "new_tenants" to "tenants"
ALTER TABLE `new_tenants` RENAME TO `tenants`;
-- create index "tenants_slug_key" to table: "tenants"
CREATE UNIQUE INDEX `tenants_slug_key` ON `tenants` (`slug`);
-- add column "findings" to table: "tool_versions"
ALTER TABLE `tool_versions` ADD COLUMN `findings` json NULL;
-- create "approvals" table
CREATE TABLE `approvals` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `decision` text NOT NULL, `actor_key` text NOT NULL, `actor` text NOT NULL, `comment` text NOT NULL DEFAULT (''), `tenant_id` uuid NOT NULL, `change_request_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `approvals_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION, CONSTRAINT `approvals_change_requests_approvals` FOREIGN KEY (`change_request_id`) REFERENCES `change_requests` (`id`) ON DELETE NO ACTION);
-- create index "approval_tenant_id" to table: "approvals"
CREATE INDEX `approval_tenant_id` ON `approvals` (`tenant_id`);
-- create index "approval_change_request_id_actor_key" to table: "approvals"
CREATE UNIQUE INDEX `approval_change_request_id_actor_key` ON `approvals` (`change_request_id`, `actor_key`);
-- create "change_requests" table
CREATE TABLE `change_requests` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `gateway_id` uuid NOT NULL, `kind` text NOT NULL, `status` text NOT NULL DEFAULT ('pending'), `from_sha256` text NOT NULL DEFAULT (''), `to_sha256` text NOT NULL DEFAULT (''), `requested_by` text NOT NULL, `requester_key` text NOT NULL DEFAULT (''), `comment` text NOT NULL DEFAULT (''), `approvals_required` integer NOT NULL, `decided_at` datetime NULL, `decided_by` text NOT NULL DEFAULT (''), `policy_version` integer NOT NULL DEFAULT (0), `superseded_by` uuid NULL, `tenant_id` uuid NOT NULL, `tool_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `change_requests_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION, CONSTRAINT `change_requests_tools_change_requests` FOREIGN KEY (`tool_id`) REFERENCES `tools` (`id`) ON DELETE NO ACTION);
-- create index "changerequest_tenant_id" to table: "change_requests"
CREATE INDEX `changerequest_tenant_id` ON `change_requests` (`tenant_id`);
-- create index "changerequest_tenant_id_status" to table: "change_requests"
CREATE INDEX `changerequest_tenant_id_status` ON `change_requests` (`tenant_id`, `status`);
-- create index "changerequest_tool_id_status" to table: "change_requests"
CREATE INDEX `changerequest_tool_id_status` ON `change_requests` (`tool_id`, `status`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "changerequest_tool_id_status" to table: "change_requests"
DROP INDEX `changerequest_tool_id_status`;
-- reverse: create index "changerequest_tenant_id_status" to table: "change_requests"
DROP INDEX `changerequest_tenant_id_status`;
-- reverse: create index "changerequest_tenant_id" to table: "change_requests"
DROP INDEX `changerequest_tenant_id`;
-- reverse: create "change_requests" table
DROP TABLE `change_requests`;
-- reverse: create index "approval_change_request_id_actor_key" to table: "approvals"
DROP INDEX `approval_change_request_id_actor_key`;
-- reverse: create index "approval_tenant_id" to table: "approvals"
DROP INDEX `approval_tenant_id`;
-- reverse: create "approvals" table
DROP TABLE `approvals`;
-- reverse: add column "findings" to table: "tool_versions"
ALTER TABLE `tool_versions` DROP COLUMN `findings`;
-- reverse: create index "tenants_slug_key" to table: "tenants"
DROP INDEX `tenants_slug_key`;
-- reverse: create "new_tenants" table
DROP TABLE `new_tenants`;
-- reverse: add column "applied_at" to table: "agents"
ALTER TABLE `agents` DROP COLUMN `applied_at`;
