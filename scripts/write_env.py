"""Write a local .env from .env.example with fresh secrets (used once, by `make`)."""

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

root = Path(__file__).resolve().parent.parent
target = Path(sys.argv[1]) if len(sys.argv) > 1 else root / ".env"
values = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}
lines = []
for line in (root / ".env.example").read_text().splitlines():
    key = line.split("=", 1)[0]
    lines.append(f"{key}={values[key]}" if key in values else line)
target.write_text("\n".join(lines) + "\n")
print(f"Wrote {target} with a new SECRET_KEY and TOKEN_ENCRYPTION_KEY.")
