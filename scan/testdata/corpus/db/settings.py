import os

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "orders",
        "USER": "orders",
        "PASSWORD": "Or8ers-Db#2024x",  ⟦cred⟧
        "HOST": os.environ.get("DB_HOST", "localhost"),
    }
}
SECRET_KEY = "dj-7k2@p9!x#m4q$z8w&l1v^n6b*r3t"  ⟦cred⟧
