-- +goose Up
-- modify "catalog_entries" table
ALTER TABLE "catalog_entries" ADD COLUMN "revision" bigint NOT NULL DEFAULT 0;

-- +goose Down
-- reverse: modify "catalog_entries" table
ALTER TABLE "catalog_entries" DROP COLUMN "revision";
