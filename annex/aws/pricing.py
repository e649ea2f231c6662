"""The Price List API: AWS's published on-demand prices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .clients import PRICING
from .translate import translated

if TYPE_CHECKING:
    from .session import Aws

PRICING_REGION = "us-east-1"  # the Price List API answers in a few regions only; this one serves them all


class Pricing:
    def __init__(self, aws: Aws):
        self.aws = aws

    def price_list(self, instance_type: str, region: str | None = None) -> list[str]:
        """AWS's on-demand Linux price documents (JSON text) for one instance type in a region; one call per
        page of products (a handful at most), always on the us-east-1 endpoint."""
        filters = {"instanceType": instance_type, "regionCode": region or self.aws.region, "operatingSystem": "Linux",
                   "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}  # fmt: skip
        terms = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()]
        documents: list[str] = []
        client = self.aws.client("pricing", config=PRICING, region=PRICING_REGION)
        with translated(f"asking AWS's Price List API for the price of {instance_type}"):
            pages = client.get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2", Filters=terms, FormatVersion="aws_v1"
            )
            for page in pages:
                documents += page.get("PriceList", [])
        return documents
