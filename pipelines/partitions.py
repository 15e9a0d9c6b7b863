"""Tenants are the partitions of every monitor asset (kept in sync by ``tenant_partitions_sensor``)."""

from dagster import DynamicPartitionsDefinition

TENANT_PARTITIONS_NAME = "tenant"
TENANT_TAG = "hatthasilpa/tenant"  # dagster.yaml limits runs to one per tenant on this tag
FULL_RECONCILE_TAG = "hatthasilpa/full-reconcile"  # "true": serial summaries from the registries, not the digests

tenant_partitions = DynamicPartitionsDefinition(name=TENANT_PARTITIONS_NAME)
