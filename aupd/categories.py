"""Canonical site categories and the names public lists use for them.

Policies, reports and block pages speak only canonical names; importers map whatever a
source calls a category (UT1 folder names, list file names) onto them here.
"""

from __future__ import annotations

# Canonical name -> what staff see on the block page and in /categories.
CANONICAL: dict[str, str] = {
    "adult": "Adult content",
    "gambling": "Gambling",
    "piracy": "Pirated software and media",
    "circumvention": "Getting round the filter (VPNs, anonymising proxies, DNS-over-HTTPS)",
    "malware": "Malware and cryptojacking",
    "phishing": "Phishing and scams",
    "social_media": "Social media",
    "streaming": "Streaming audio and video",
    "webmail": "Personal webmail",
    "dating": "Dating",
    "games": "Online games",
    "chat": "Chat",
    "filehosting": "File hosting",
    "shortener": "Link shorteners",
}

# Source names (UT1 folders, Block List Project / Sinfonietta file names) -> canonical.
SOURCE_NAMES: dict[str, str] = {
    "adult": "adult",
    "porn": "adult",
    "mixed_adult": "adult",
    "pornography": "adult",
    "pornography-hosts": "adult",
    "gambling": "gambling",
    "gambling-hosts": "gambling",
    "warez": "piracy",
    "piracy": "piracy",
    "torrent": "piracy",
    "vpn": "circumvention",
    "redirector": "circumvention",
    "strong_redirector": "circumvention",
    "doh": "circumvention",
    "proxy": "circumvention",
    "malware": "malware",
    "cryptojacking": "malware",
    "ransomware": "malware",
    "phishing": "phishing",
    "scam": "phishing",
    "fraud": "phishing",
    "social_networks": "social_media",
    "social": "social_media",
    "social-hosts": "social_media",
    "audio-video": "streaming",
    "webmail": "webmail",
    "dating": "dating",
    "games": "games",
    "chat": "chat",
    "filehosting": "filehosting",
    "shortener": "shortener",
}


def canonical_category(name: str) -> str | None:
    """Map a canonical or source category name (any case, .txt suffix ignored) to canonical."""
    key = name.strip().lower().removesuffix(".txt").replace(" ", "_")
    if key in CANONICAL:
        return key
    return SOURCE_NAMES.get(key)
