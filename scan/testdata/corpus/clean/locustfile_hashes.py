from locust import HttpUser, task

ASSETS = [
    "/static/app.4f3c2a1b9e8d7c6b5a4f3e2d1c0b9a8f.js",
    "/static/vendor.e3b0c44298fc1c149afbf4c8996fb924.css",
]
COMMIT = "9fceb02d0ae598e95dc970b74767f19372d61af8"


class AssetUser(HttpUser):
    @task
    def assets(self):
        for a in ASSETS:
            self.client.get(a + "?v=" + COMMIT)
        self.client.get("/download/sha256/5d41402abc4b2a76b9719d911017c592ae2f4fe1d9e8b0c7a6f5e4d3c2b1a098")
