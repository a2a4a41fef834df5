# Tokio's own blocking-pool tests (loom models as repeated races, task_blocking,
# rt_spawn_blocking, rt_common, rt_threaded, rt_handle_block_on,
# rt_unstable_metrics, #8406), ported to blockpool; see tokio_port_test.cpp.
blockpool_add_test(tokio_port_test SOURCES tokio_port_test.cpp TIMEOUT 120 LABELS core)
