from locust import FastHttpUser, task


class PartnerApi(FastHttpUser):
    api_key = "pk_9d8c7b6a5f4e3d2c1b0a"  ⟦cred⟧
    host = "https://partner.example.net"

    @task
    def quote(self):
        self.client.get("/v2/quote", headers={"X-API-Key": self.api_key})
