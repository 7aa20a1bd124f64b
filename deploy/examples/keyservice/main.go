// Command keyservice serves the small API-key service that the http
// target's tests use (targets/httpkey/keyservice), for the runnable example
// in this folder's README. Keys live in memory: restarting it revokes
// everything.
//
//	keyservice [-listen 127.0.0.1:8089]
//
// The admin bearer token is read from $KEYSERVICE_ADMIN_TOKEN; it is never
// printed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/swarmkey/swarmkey/internal/keyservice"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8089", "address to listen on (plain HTTP: keep it on loopback)")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "keyservice:", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	token := os.Getenv("KEYSERVICE_ADMIN_TOKEN")
	if len(token) < 16 {
		return errors.New("set KEYSERVICE_ADMIN_TOKEN to an admin token of at least 16 characters")
	}
	svc := keyservice.New(token)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Path only: the key may be in the query.
		logger.Info("request", "method", r.Method, "path", r.URL.Path)
		svc.Handler().ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: listen, Handler: logged, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("key service listening", "addr", listen)
	return srv.ListenAndServe()
}
