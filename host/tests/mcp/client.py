"""Drives `orch mcp` with the official MCP Python SDK (host/tests/mcp.rs runs it).

usage: client.py CALLS_JSON COMMAND [ARG...]

Starts COMMAND as an MCP server over stdio (in the current directory, with this process's
environment), initializes, lists the tools, makes each call of CALLS_JSON (a list of
{"name": ..., "arguments": {...}}) in order, and prints one JSON object on stdout:
{"server": {...}, "instructions": ..., "tools": [{"name", "description", "inputSchema",
"annotations"}], "calls": [{"name", "isError", "text"}]}.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def main() -> None:
    calls = json.loads(sys.argv[1])
    params = StdioServerParameters(
        command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ), cwd=os.getcwd()
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            out = {
                "server": {"name": init.server_info.name, "version": init.server_info.version},
                "instructions": init.instructions,
                "tools": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "inputSchema": t.input_schema,
                        "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True)
                        if t.annotations
                        else None,
                    }
                    for t in listed.tools
                ],
                "calls": [],
            }
            for call in calls:
                result = await session.call_tool(call["name"], call.get("arguments") or {})
                text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
                out["calls"].append(
                    {"name": call["name"], "isError": bool(result.is_error), "text": text}
                )
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
