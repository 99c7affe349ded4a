"""Low-balance alerts (docs/billing.md): a threshold per account, one email and/or webhook
POST when the available balance crosses below it, re-armed when it is back above.

``service`` keeps the rows and the periodic ``check_once``; ``webhook`` posts under the image
fetcher's SSRF policy (``vision/policy.py``).
"""

from minitoolai.alerts.service import Alert, AlertService
from minitoolai.alerts.webhook import WebhookRefused, parse_webhook_url, webhook_policy

__all__ = [
    "Alert",
    "AlertService",
    "WebhookRefused",
    "parse_webhook_url",
    "webhook_policy",
]
