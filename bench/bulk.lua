-- wrk script: POST the same bulk body (a JSON array of run records) on
-- every request. The body file is named by the BULK_BODY environment
-- variable; `bench/run.sh` writes it from the generated data.
local path = os.getenv("BULK_BODY")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
