import boto3
from locust import User, task

AWS_ACCESS_KEY_ID = "@@AKIA@@Z7QW3RT5YU4IOP2K"  ⟦cred⟧
AWS_SECRET_ACCESS_KEY = "q8Zr2Lw9Xk4Vn7Bm1Tc5Yp3Hs6Df0Gj8Ka2Qe4Ru"  ⟦cred⟧


class S3User(User):
    def on_start(self):
        self.s3 = boto3.client("s3", aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY)

    @task
    def put(self):
        self.s3.put_object(Bucket="load", Key="k", Body=b"x")
