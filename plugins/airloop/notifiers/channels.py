"""Send one alert to one channel of the spec's ``alerts.channels``, through the providers' own code.

* ``smtp``: the SMTP provider's :class:`~airflow.providers.smtp.notifications.smtp.SmtpNotifier`
  (host, port, login, password and ``from_email`` in the connection's fields and extra);
* ``slack``: the Slack provider's
  :class:`~airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier` (an incoming
  webhook: the token in the connection's password, the host ``hooks.slack.com/services``);
* ``webhook``: a JSON POST with the HTTP provider's :class:`~airflow.providers.http.hooks.http.HttpHook`
  to the connection's host and the channel's ``endpoint`` (headers such as ``Authorization`` in
  the connection's extra, or a login and password: basic auth).

Each sender registers the connection's secrets with Airflow's secrets masker before it sends, so
no log line (the providers' own included) shows them. The message is built already: nothing is
rendered as a Jinja template.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.spec import AlertChannelSpec

Message = Mapping[str, Any]  # subject, text, payload
SEND_TIMEOUT = 10  # seconds a Slack or webhook send may take (SMTP: the connection's ``timeout``)
Sender = Callable[["AlertChannelSpec", Message], None]


def mask_connection_secrets(conn_id: str) -> None:
    """Register the connection's password and its sensitive extra fields (``Authorization``,
    ``token``... by Airflow's sensitive names) with the secrets masker. Airflow masks a
    connection's password when it fetches it; this also covers the extra."""
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    conn = BaseHook.get_connection(conn_id)
    if conn.password:
        mask_secret(conn.password)
    extra = conn.extra_dejson
    if extra:
        mask_secret(extra)
        for name, value in extra.items():
            if isinstance(value, Mapping):  # headers: {"Authorization": "Bearer ..."}
                mask_secret(dict(value))
            elif isinstance(value, str):
                mask_secret(value, name)


def send_smtp(channel: AlertChannelSpec, message: Message) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    mask_connection_secrets(channel.conn_id)
    html = f"<pre>{escape(message['text'])}</pre>"
    SmtpNotifier(
        to=list(channel.to),
        from_email=channel.from_email,
        subject=message["subject"],
        html_content=html,
        smtp_conn_id=channel.conn_id,
    ).notify({})


def send_slack(channel: AlertChannelSpec, message: Message) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    mask_connection_secrets(channel.conn_id)
    SlackWebhookNotifier(slack_webhook_conn_id=channel.conn_id, text=message["text"], timeout=SEND_TIMEOUT).notify({})


def send_webhook(channel: AlertChannelSpec, message: Message) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    mask_connection_secrets(channel.conn_id)
    hook = HttpHook(method="POST", http_conn_id=channel.conn_id)
    hook.run(
        endpoint=channel.endpoint or None,
        data=json.dumps(message["payload"]),
        headers={"Content-Type": "application/json"},
        extra_options={"timeout": SEND_TIMEOUT},
    )


SENDERS: dict[str, Sender] = {"smtp": send_smtp, "slack": send_slack, "webhook": send_webhook}
