"""Slack notifications. A notification that cannot be delivered is logged and reported back, never raised:
Slack being down must not fail a rollback or a backup.

Retries are slack-sdk's own handlers (rate limits honour Retry-After; 500/503 are retried once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from blocks import SlackSettings

_OUTCOME_ICON = {"completed": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}


@dataclass
class Delivery:
    delivered: bool
    detail: str


def _retry_handlers() -> list:
    return [
        ConnectionErrorRetryHandler(max_retry_count=1),
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def format_message(
    environment: str, flow: str, outcome: str, facts: dict[str, Any], run_url: str | None
) -> tuple[str, list[dict]]:
    """The text (fallback) and Block Kit blocks of one run notification."""
    title = f"{_OUTCOME_ICON.get(outcome, ':grey_question:')} *{flow}* on *{environment}*: {outcome}"
    lines = [f"• {key}: {value}" for key, value in facts.items()]
    text = "\n".join([title, *lines] + ([f"<{run_url}|Prefect run>"] if run_url else []))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    return text, blocks


def send_notification(
    settings: SlackSettings,
    environment: str,
    flow: str,
    outcome: str,
    facts: dict[str, Any],
    run_url: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Delivery:
    """Post one run notification to Slack; report (never raise) a failed delivery."""
    logger = logger or logging.getLogger("opsflows.notify")
    text, blocks = format_message(environment, flow, outcome, facts, run_url)
    try:
        if settings.bot_token is not None:
            client = WebClient(
                token=settings.bot_token.get_secret_value(),
                base_url=settings.api_url or WebClient.BASE_URL,
                timeout=10,
                retry_handlers=_retry_handlers(),
            )
            client.chat_postMessage(channel=settings.channel, text=text, blocks=blocks)
        elif settings.webhook_url is not None:
            webhook = WebhookClient(
                settings.webhook_url.get_secret_value(), timeout=10, retry_handlers=_retry_handlers()
            )
            response = webhook.send(text=text, blocks=blocks)
            if response.status_code != 200:
                raise RuntimeError(f"webhook answered {response.status_code}: {response.body}")
        else:
            return Delivery(False, "Slack is not configured for this environment")
    except Exception as exc:  # noqa: BLE001 - any failure to notify is reported, never raised
        detail = f"Slack notification failed: {type(exc).__name__}: {exc}"
        if settings.webhook_url is not None:  # the webhook URL is itself the secret
            detail = detail.replace(settings.webhook_url.get_secret_value(), "<webhook>")
        logger.warning(detail)
        return Delivery(False, detail)
    return Delivery(True, f"posted to {settings.channel if settings.bot_token else 'webhook'}")


@task(name="notify-slack", retries=0)
def notify_slack(
    settings: SlackSettings,
    environment: str,
    flow: str,
    outcome: str,
    facts: dict[str, Any],
    run_url: str | None = None,
) -> Delivery:
    """The same, as a task of the run (it shows in the run's timeline and logs)."""
    return send_notification(settings, environment, flow, outcome, facts, run_url, get_run_logger())
