-- +goose Up
-- add column "previous_cert_fingerprint" to table: "agents"
ALTER TABLE `agents` ADD COLUMN `previous_cert_fingerprint` text NULL;
-- add column "cert_expires_at" to table: "agents"
ALTER TABLE `agents` ADD COLUMN `cert_expires_at` datetime NULL;
-- add column "renewed_at" to table: "agents"
ALTER TABLE `agents` ADD COLUMN `renewed_at` datetime NULL;
-- add column "revoked_at" to table: "agents"
ALTER TABLE `agents` ADD COLUMN `revoked_at` datetime NULL;

-- +goose Down
-- reverse: add column "revoked_at" to table: "agents"
ALTER TABLE `agents` DROP COLUMN `revoked_at`;
-- reverse: add column "renewed_at" to table: "agents"
ALTER TABLE `agents` DROP COLUMN `renewed_at`;
-- reverse: add column "cert_expires_at" to table: "agents"
ALTER TABLE `agents` DROP COLUMN `cert_expires_at`;
-- reverse: add column "previous_cert_fingerprint" to table: "agents"
ALTER TABLE `agents` DROP COLUMN `previous_cert_fingerprint`;
