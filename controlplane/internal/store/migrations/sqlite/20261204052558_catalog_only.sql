-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_tenants" table
CREATE TABLE `new_tenants` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `name` text NOT NULL, `slug` text NOT NULL, `signing_private_key` blob NOT NULL, `signing_public_key` blob NOT NULL, `next_signing_private_key` blob NULL, `next_signing_public_key` blob NULL, `approvals_required` integer NOT NULL DEFAULT (1), `catalog_only` bool NOT NULL DEFAULT (false), `result_action` text NOT NULL DEFAULT ('redact'), `client_oidc_issuer` text NOT NULL DEFAULT (''), `client_group_claim` text NOT NULL DEFAULT ('groups'), PRIMARY KEY (`id`));
-- copy rows from old table "tenants" to new temporary table "new_tenants"
INSERT INTO `new_tenants` (`id`, `created_at`, `updated_at`, `name`, `slug`, `signing_private_key`, `signing_public_key`, `next_signing_private_key`, `next_signing_public_key`, `approvals_required`, `result_action`, `client_oidc_issuer`, `client_group_claim`) SELECT `id`, `created_at`, `updated_at`, `name`, `slug`, `signing_private_key`, `signing_public_key`, `next_signing_private_key`, `next_signing_public_key`, `approvals_required`, `result_action`, `client_oidc_issuer`, `client_group_claim` FROM `tenants`;
-- drop "tenants" table after copying rows
DROP TABLE `tenants`;
-- rename temporary table "new_tenants" to "tenants"
ALTER TABLE `new_tenants` RENAME TO `tenants`;
-- create index "tenants_slug_key" to table: "tenants"
CREATE UNIQUE INDEX `tenants_slug_key` ON `tenants` (`slug`);
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "tenants_slug_key" to table: "tenants"
DROP INDEX `tenants_slug_key`;
-- reverse: create "new_tenants" table
DROP TABLE `new_tenants`;
