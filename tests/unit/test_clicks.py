"""Which short-link requests count as a person's click: user agents taken from real fetchers and
handsets, HEAD requests and the one-second rule, and the keyed address hash."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from nudge.clicks import BotReason, bot_reason, ip_hash

FETCHERS = [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # Apple's iMessage preview
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "WhatsApp/2.23.20.0 A",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0 Safari/537.36",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "SkypeUriPreview Preview/0.5",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "python-httpx/0.28.1",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "",
    "   ",
]
PEOPLE = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; V2254A Build/TP1A; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 "
    "Chrome/116.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 "
    "MicroMessenger/8.0.47.2560 WeChat/arm64",
    "Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; HarmonyOS; NOH-AN00) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/99.0 HuaweiBrowser/14.0.5.302 Mobile Safari/537.36",
]
LATER = timedelta(minutes=3)


@pytest.mark.parametrize("agent", FETCHERS)
def test_preview_fetchers_and_scanners_are_bots(agent: str) -> None:
    """A known preview fetcher, crawler, script or an empty user agent is a bot's request."""
    assert bot_reason(head=False, user_agent=agent, since_delivery=LATER) is BotReason.USER_AGENT
    assert bot_reason(head=False, user_agent=None, since_delivery=LATER) is BotReason.USER_AGENT


@pytest.mark.parametrize("agent", PEOPLE)
def test_handset_browsers_are_people(agent: str) -> None:
    """Safari, Chrome, WeChat's and Huawei's browsers (and a Cubot handset) count as people."""
    assert bot_reason(head=False, user_agent=agent, since_delivery=LATER) is None
    assert bot_reason(head=False, user_agent=agent, since_delivery=None) is None


def test_head_and_clicks_within_a_second_of_delivery_are_bots() -> None:
    """A HEAD is a checker's, whatever its agent; a GET within a second of delivery a scanner's."""
    person = PEOPLE[0]
    assert bot_reason(head=True, user_agent=person, since_delivery=LATER) is BotReason.HEAD
    assert bot_reason(head=False, user_agent=person, since_delivery=timedelta(milliseconds=999)) is (
        BotReason.TOO_SOON
    )
    assert bot_reason(head=False, user_agent=person, since_delivery=timedelta(seconds=1)) is None
    early = bot_reason(head=False, user_agent=person, since_delivery=-timedelta(seconds=1))
    assert early is BotReason.TOO_SOON


def test_ip_hash_is_keyed_hmac_and_never_the_address() -> None:
    """The address is kept as HMAC-SHA256 under the key (first 128 bits), so another key gives
    another hash; no address, no hash."""
    expected = hmac.new(b"k1", b"203.0.113.7", hashlib.sha256).hexdigest()[:32]
    assert ip_hash(b"k1", "203.0.113.7") == expected
    assert ip_hash(b"k2", "203.0.113.7") != expected
    assert ip_hash(b"k1", None) is None and ip_hash(b"k1", "") is None


def test_the_address_key_is_its_own_setting_or_derived_from_the_codec_keys() -> None:
    """``NUDGE_IP_HASH_KEY`` when set; else sha256 of a prefix and the codec keys, never the
    callback token (which sits in the providers' receipt URLs)."""
    from pydantic import SecretStr

    from nudge.settings import Settings

    codec = "k1:" + "A" * 43 + "="
    derived = Settings(codec_keys=SecretStr(codec))
    assert derived.ip_key == hashlib.sha256(b"nudge:ip-hash:" + codec.encode()).digest()
    assert derived.ip_key != derived.callback_token.get_secret_value().encode()
    assert Settings(codec_keys=SecretStr(codec), ip_hash_key=SecretStr("own")).ip_key == b"own"
