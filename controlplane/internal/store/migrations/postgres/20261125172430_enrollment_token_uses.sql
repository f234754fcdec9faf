-- +goose Up
-- modify "enrollment_tokens" table
ALTER TABLE "enrollment_tokens" ADD COLUMN "max_uses" bigint NOT NULL DEFAULT 1, ADD COLUMN "uses" bigint NOT NULL DEFAULT 0;
-- tokens redeemed before uses were counted stay spent
UPDATE "enrollment_tokens" SET "uses" = 1 WHERE "used_at" IS NOT NULL;

-- +goose Down
-- reverse: modify "enrollment_tokens" table
ALTER TABLE "enrollment_tokens" DROP COLUMN "uses", DROP COLUMN "max_uses";
