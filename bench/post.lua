-- wrk script: POST one run record per request, each with its own date_code.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

local body_template = '{"start_local": "2025-08-08T05:07:01", "end_local": "2025-08-08T05:29:06", '
  .. '"start_utc": "2025-08-08T12:07:01Z", "end_utc": "2025-08-08T12:29:06Z", "elapsed_seconds": 1325.0, '
  .. '"elapsed_human": "22m 5s", "output_file": "/data/pipeline/bench/output.csv", '
  .. '"log_file": "/data/logs/bench-1.log", "rowcount": 8543, "pid": 48213, '
  .. '"date_code": "bench-%d-%d", "pipeline_name": "bench", "script_name": "bench.py", '
  .. '"pipeline_type": "batch", "environment": "prod", "archived_file": null}'

function request()
  counter = counter + 1
  local body = string.format(body_template, id, counter)
  return wrk.format("POST", "/pipelines", {["Content-Type"] = "application/json"}, body)
end
