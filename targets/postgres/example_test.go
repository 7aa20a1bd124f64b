package postgres_test

import (
	"fmt"

	"github.com/swarmkey/swarmkey/secret"
	"github.com/swarmkey/swarmkey/targets/postgres"
)

// A secret document is built from a Document and parsed back; printing it
// never shows the password.
func ExampleDocument() {
	doc := postgres.Document{
		Host: "127.0.0.1", Port: 5432, DBName: "app",
		Username: "checkout", Password: secret.FromString("correct horse battery staple"),
	}
	s, err := doc.Secret()
	if err != nil {
		panic(err)
	}
	back, err := postgres.ParseDocument(s)
	if err != nil {
		panic(err)
	}
	fmt.Println(s)
	fmt.Printf("%+v\n", back)
	// Output:
	// [REDACTED]
	// {Host:127.0.0.1 Port:5432 DBName:app Username:checkout Password:[REDACTED]}
}
