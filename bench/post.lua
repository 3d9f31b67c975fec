-- wrk script: POST one run record per request. Each record has its own
-- date_code and its own start time (runs finishing one after another), as
-- pipelines in the field send them.
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  counter = 0
end

local body_template = '{"start_local": "%s", "end_local": "%s", '
  .. '"start_utc": "%sZ", "end_utc": "%sZ", "elapsed_seconds": 1325.0, '
  .. '"elapsed_human": "22m 5s", "output_file": "/data/pipeline/bench/output.csv", '
  .. '"log_file": "/data/logs/bench-1.log", "rowcount": 8543, "pid": 48213, '
  .. '"date_code": "bench-%d-%d", "pipeline_name": "bench", "script_name": "bench.py", '
  .. '"pipeline_type": "batch", "environment": "prod", "archived_file": null}'

function request()
  counter = counter + 1
  local start = 1754654821 + counter * 2 + id
  local started = os.date("!%Y-%m-%dT%H:%M:%S", start)
  local ended = os.date("!%Y-%m-%dT%H:%M:%S", start + 1325)
  local body = string.format(body_template, started, ended, started, ended, id, counter)
  return wrk.format("POST", "/pipelines", {["Content-Type"] = "application/json"}, body)
end
