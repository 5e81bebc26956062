"""CONNECT through Tollgate with Python's own HTTP client and a strict X.509 check (as Python
3.13 does by default): prints the status line of GET /v1/models on api.openai.com."""
import http.client
import ssl
import sys

proxy_host, proxy_port, ca_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca_file)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
conn = http.client.HTTPSConnection(proxy_host, proxy_port, context=ctx, timeout=20)
conn.set_tunnel("api.openai.com", 443)
conn.request("GET", "/v1/models")
response = conn.getresponse()
print(response.status, response.read().decode())
