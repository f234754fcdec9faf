-- +goose Up
-- modify "tenants" table
ALTER TABLE "tenants" ADD COLUMN "catalog_only" boolean NOT NULL DEFAULT false;

-- +goose Down
-- reverse: modify "tenants" table
ALTER TABLE "tenants" DROP COLUMN "catalog_only";
