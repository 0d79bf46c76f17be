"""Uses the Python client that openapi-python-client generated from the served OpenAPI document
(package `clokio_client`) against a running Clokio: the calls an integrator makes first.

Environment: CLOKIO_URL, CLOKIO_API_KEY (a key with every scope), CLOKIO_LIMITED_KEY (a key of an
org whose rate limit the script runs out), CLOKIO_TODAY (YYYY-MM-DD, the org's today).
Prints one line per step; any surprise is an AssertionError (exit 1). Run by tests/it/clients.rs.
"""

import datetime
import os

from clokio_client import AuthenticatedClient
from clokio_client.api.attendance import clock_in, clock_out, daily
from clokio_client.api.employees import create_employees as create_employee
from clokio_client.api.employees import list_employees
from clokio_client.api.locations import create_locations as create_location
from clokio_client.api.reports import summary
from clokio_client.models import (
    ClockBody,
    EmployeeCreateBody,
    ErrorEnvelope,
    LocationCreateBody,
)


def client(key: str) -> AuthenticatedClient:
    return AuthenticatedClient(
        base_url=os.environ["CLOKIO_URL"], token=key, prefix="", auth_header_name="X-API-Key"
    )


api = client(os.environ["CLOKIO_API_KEY"])
today = os.environ["CLOKIO_TODAY"]

# A location and an employee.
res = create_location.sync_detailed(
    client=api,
    body=LocationCreateBody(name="Py Office", latitude=52.52, longitude=13.405, radius_meters=150),
)
assert res.status_code == 201, res.content
assert res.parsed.data.name == "Py Office"
print("location created")

res = create_employee.sync_detailed(
    client=api,
    body=EmployeeCreateBody(
        name="Ada Python", email="ada@python.example", location="Py Office", employee_code="PY-1"
    ),
)
assert res.status_code == 201, res.content
assert res.parsed.data.employee_code == "PY-1"
print("employee created")

# Clock in and out.
res = clock_in.sync_detailed(client=api, body=ClockBody(nip="PY-1"))
assert res.status_code == 200, res.content
assert res.parsed.data.employee_name == "Ada Python"
res = clock_out.sync_detailed(client=api, body=ClockBody(nip="PY-1"))
assert res.status_code == 200, res.content
print("clocked in and out")

# The daily report and the monthly summary.
res = daily.sync_detailed(client=api, date=datetime.date.fromisoformat(today))
assert res.status_code == 200, res.content
assert [r.nip for r in res.parsed.data] == ["PY-1"], res.content
res = summary.sync_detailed(client=api, month=today[5:7], year=today[:4])
assert res.status_code == 200, res.content
assert any(row.nip == "PY-1" for row in res.parsed.data), res.content
print("daily report and monthly summary read")

# Page through the employees, one at a time, with the total from X-Total-Count.
for n in range(2, 5):
    res = create_employee.sync_detailed(
        client=api,
        body=EmployeeCreateBody(
            name=f"Py {n}", email=f"py{n}@python.example", location="Py Office", employee_code=f"PY-{n}"
        ),
    )
    assert res.status_code == 201, res.content
codes, page = [], 1
while True:
    res = list_employees.sync_detailed(client=api, page=page, per_page=1)
    assert res.status_code == 200, res.content
    total = int(res.headers["x-total-count"])
    codes += [e.employee_code for e in res.parsed.data]
    if 'rel="next"' not in res.headers["link"]:
        break
    page += 1
assert total == 4 and codes == ["PY-1", "PY-2", "PY-3", "PY-4"], (total, codes)
print(f"paged through {total} employees")

# A 422 and a 429 through the generated error type.
res = create_employee.sync_detailed(
    client=api,
    body=EmployeeCreateBody(name="No Place", email="np@python.example", location="Nowhere"),
)
assert res.status_code == 422 and isinstance(res.parsed, ErrorEnvelope), res.content
assert res.parsed.message == "The selected location is invalid", res.parsed.message
print("422:", res.parsed.message)

limited = client(os.environ["CLOKIO_LIMITED_KEY"])
for _ in range(1000):
    res = list_employees.sync_detailed(client=limited)
    if res.status_code == 429:
        break
    assert res.status_code == 200, res.content
assert res.status_code == 429 and isinstance(res.parsed, ErrorEnvelope), res.content
assert int(res.headers["retry-after"]) >= 1
print("429:", res.parsed.message)
print("python client: ok")
