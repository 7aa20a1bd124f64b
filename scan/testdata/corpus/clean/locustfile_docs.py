"""A load test of the catalogue.

Run it under swarmkey exec, which sets CATALOGUE_API_API_KEY; never paste a
key here. The API answers 401 with {"error": "invalid token"}.
"""
import os

from locust import HttpUser, task


class CatalogueUser(HttpUser):
    @task
    def list(self):
        self.client.get("/catalogue", headers={"X-API-Key": os.environ["CATALOGUE_API_API_KEY"]})
