-- +goose Up
-- add column "next_signing_private_key" to table: "tenants"
ALTER TABLE `tenants` ADD COLUMN `next_signing_private_key` blob NULL;
-- add column "next_signing_public_key" to table: "tenants"
ALTER TABLE `tenants` ADD COLUMN `next_signing_public_key` blob NULL;

-- +goose Down
-- reverse: add column "next_signing_public_key" to table: "tenants"
ALTER TABLE `tenants` DROP COLUMN `next_signing_public_key`;
-- reverse: add column "next_signing_private_key" to table: "tenants"
ALTER TABLE `tenants` DROP COLUMN `next_signing_private_key`;
