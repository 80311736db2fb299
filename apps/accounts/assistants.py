"""What the "Connect your assistant" page hands out: URLs, a Custom GPT's instructions, the MCP
client settings and example prompts. Plain values, built from SITE_URL."""

from __future__ import annotations

import json

from django.conf import settings

GPT_INSTRUCTIONS = """\
You answer questions about my Spotify listening history with the Actions of this GPT. \
Always call an Action for numbers; never guess them.
- Windows: use days (default 90, 0 = all time) or start/end dates; my time zone is used \
unless I name another.
- Each answer carries the window, the zone, the counting rule (a listen is 30 s or more) \
and a coverage note. When the note says the data is thin, tell me, and suggest importing \
my Spotify data export.
- Prefer history_taste_summary for broad questions, the top_* Actions for rankings, \
history_listening_heatmap for "when do I listen", history_entity_stats for one artist \
or track, history_compare_periods for "how has my taste changed".
- Answer with names, short tables and plain sentences."""

EXAMPLE_PROMPTS = [
    "What did I listen to most in the last 90 days?",
    "When do I usually listen to music? Show me my busiest weekday and hour.",
    "How often have I played Radiohead, and since when?",
    "Compare my top artists this summer with last summer: who rose and who fell?",
    "Which artists did I discover this year?",
    "How complete is my listening data? Are there gaps?",
]

TOKEN_PLACEHOLDER = "<your API token>"  # noqa: S105 (a placeholder, not a secret)


def urls() -> dict[str, str]:
    base = settings.SITE_URL
    return {
        "schema": f"{base}/api/schema/",
        "docs": f"{base}/api/docs/",
        "mcp": f"{base}/mcp",
        "privacy": f"{base}/",
    }


def claude_code_command(token: str | None) -> str:
    return (
        f"claude mcp add --transport http listening-history {urls()['mcp']} "
        f'--header "Authorization: Bearer {token or TOKEN_PLACEHOLDER}"'
    )


def cursor_config(token: str | None) -> str:
    config = {
        "mcpServers": {
            "listening-history": {
                "url": urls()["mcp"],
                "headers": {"Authorization": f"Bearer {token or TOKEN_PLACEHOLDER}"},
            }
        }
    }
    return json.dumps(config, indent=2)
