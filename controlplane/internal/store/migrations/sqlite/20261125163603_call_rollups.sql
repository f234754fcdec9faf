-- +goose Up
-- create "call_rollups" table
CREATE TABLE `call_rollups` (`id` uuid NOT NULL, `gateway_id` uuid NOT NULL, `minute` datetime NOT NULL, `virtual_server` text NOT NULL DEFAULT (''), `upstream` text NOT NULL DEFAULT (''), `tool` text NOT NULL DEFAULT (''), `calls` integer NOT NULL DEFAULT (0), `denies` integer NOT NULL DEFAULT (0), `errors` integer NOT NULL DEFAULT (0), `latency_sum_micros` integer NOT NULL DEFAULT (0), `latency_bucket_a` integer NOT NULL DEFAULT (0), `latency_bucket_b` integer NOT NULL DEFAULT (0), `latency_bucket_c` integer NOT NULL DEFAULT (0), `latency_bucket_d` integer NOT NULL DEFAULT (0), `latency_bucket_e` integer NOT NULL DEFAULT (0), `latency_bucket_f` integer NOT NULL DEFAULT (0), `latency_bucket_g` integer NOT NULL DEFAULT (0), `latency_bucket_h` integer NOT NULL DEFAULT (0), `latency_bucket_i` integer NOT NULL DEFAULT (0), `latency_bucket_j` integer NOT NULL DEFAULT (0), `latency_bucket_k` integer NOT NULL DEFAULT (0), `latency_bucket_l` integer NOT NULL DEFAULT (0), `tenant_id` uuid NOT NULL, PRIMARY KEY (`id`), CONSTRAINT `call_rollups_tenants_tenant` FOREIGN KEY (`tenant_id`) REFERENCES `tenants` (`id`) ON DELETE NO ACTION);
-- create index "callrollup_tenant_id" to table: "call_rollups"
CREATE INDEX `callrollup_tenant_id` ON `call_rollups` (`tenant_id`);
-- create index "callrollup_gateway_id_minute_virtual_server_upstream_tool" to table: "call_rollups"
CREATE UNIQUE INDEX `callrollup_gateway_id_minute_virtual_server_upstream_tool` ON `call_rollups` (`gateway_id`, `minute`, `virtual_server`, `upstream`, `tool`);
-- create index "callrollup_tenant_id_minute" to table: "call_rollups"
CREATE INDEX `callrollup_tenant_id_minute` ON `call_rollups` (`tenant_id`, `minute`);

-- +goose Down
-- reverse: create index "callrollup_tenant_id_minute" to table: "call_rollups"
DROP INDEX `callrollup_tenant_id_minute`;
-- reverse: create index "callrollup_gateway_id_minute_virtual_server_upstream_tool" to table: "call_rollups"
DROP INDEX `callrollup_gateway_id_minute_virtual_server_upstream_tool`;
-- reverse: create index "callrollup_tenant_id" to table: "call_rollups"
DROP INDEX `callrollup_tenant_id`;
-- reverse: create "call_rollups" table
DROP TABLE `call_rollups`;
