-- +goose Up
-- modify "tenants" table
ALTER TABLE "tenants" ADD COLUMN "next_signing_private_key" bytea NULL, ADD COLUMN "next_signing_public_key" bytea NULL;

-- +goose Down
-- reverse: modify "tenants" table
ALTER TABLE "tenants" DROP COLUMN "next_signing_public_key", DROP COLUMN "next_signing_private_key";
