-- +goose NO TRANSACTION
-- +goose Up
-- disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- create "new_enrollment_tokens" table
CREATE TABLE `new_enrollment_tokens` (`id` uuid NOT NULL, `created_at` datetime NOT NULL, `updated_at` datetime NOT NULL, `secret_hash` blob NOT NULL, `expires_at` datetime NOT NULL, `used_at` datetime NULL, `max_uses` integer NOT NULL DEFAULT (1), `uses` integer NOT NULL DEFAULT (0), `tenant_id` uuid NOT NULL, `gateway_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `enrollment_tokens_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION, CONSTRAINT `enrollment_tokens_gateways_enrollment_tokens` FOREIGN KEY (`gateway_id`) REFERENCES `gateways` (`id`) ON DELETE NO ACTION);
-- copy rows from old table "enrollment_tokens" to new temporary table "new_enrollment_tokens"
INSERT INTO `new_enrollment_tokens` (`id`, `created_at`, `updated_at`, `secret_hash`, `expires_at`, `used_at`, `tenant_id`, `gateway_id`) SELECT `id`, `created_at`, `updated_at`, `secret_hash`, `expires_at`, `used_at`, `tenant_id`, `gateway_id` FROM `enrollment_tokens`;
-- drop "enrollment_tokens" table after copying rows
DROP TABLE `enrollment_tokens`;
-- rename temporary table "new_enrollment_tokens" to "enrollment_tokens"
ALTER TABLE `new_enrollment_tokens` RENAME TO `enrollment_tokens`;
-- create index "enrollment_tokens_secret_hash_key" to table: "enrollment_tokens"
CREATE UNIQUE INDEX `enrollment_tokens_secret_hash_key` ON `enrollment_tokens` (`secret_hash`);
-- create index "enrollmenttoken_tenant_id" to table: "enrollment_tokens"
CREATE INDEX `enrollmenttoken_tenant_id` ON `enrollment_tokens` (`tenant_id`);
-- tokens redeemed before uses were counted stay spent
UPDATE `enrollment_tokens` SET `uses` = 1 WHERE `used_at` IS NOT NULL;
-- enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;

-- +goose Down
-- reverse: create index "enrollmenttoken_tenant_id" to table: "enrollment_tokens"
DROP INDEX `enrollmenttoken_tenant_id`;
-- reverse: create index "enrollment_tokens_secret_hash_key" to table: "enrollment_tokens"
DROP INDEX `enrollment_tokens_secret_hash_key`;
-- reverse: create "new_enrollment_tokens" table
DROP TABLE `new_enrollment_tokens`;
