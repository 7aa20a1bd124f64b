from config import BASE_URL
from locust import HttpUser, task


class StockUser(HttpUser):
    host = BASE_URL

    @task
    def stock(self):
        self.client.get("/stock/7c9e6679-7425-40de-944b-e07fc1f90ae7")
