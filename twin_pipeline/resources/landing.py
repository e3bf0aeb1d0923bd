"""The landing container as a Dagster resource (azure profile); the upload itself is
`lib/integrations/landing.py`. The Azure SDK is imported where it is used (the `cloud` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from twin_pipeline.lib.integrations.landing import client_for

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient


class LandingResource(dg.ConfigurableResource):
    """The landing container. Shared key (account name + key), a SAS token, or else the
    DefaultAzureCredential chain (managed identity, Azure CLI login, ...)."""

    account_url: str
    container: str = "landing"
    account_name: str = ""
    account_key: str = ""
    sas_token: str = ""
    block_size: int = 4 << 20

    def credential(self) -> Any:
        if self.account_key:
            return {"account_name": self.account_name, "account_key": self.account_key}
        if self.sas_token:
            return self.sas_token
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def service_client(self) -> BlobServiceClient:
        """The account with the SDK's own retries (for the Pipes transport, which polls)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(self.account_url, credential=self.credential())

    def container_client(self) -> ContainerClient:
        """The container, created when missing; retries are `land()`'s, not the SDK's."""
        container = client_for(self.account_url, self.credential(), block_size=self.block_size).get_container_client(
            self.container
        )
        from azure.core.exceptions import ResourceExistsError

        try:
            container.create_container()
        except ResourceExistsError:
            pass
        return container
