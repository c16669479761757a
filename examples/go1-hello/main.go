// go1-hello: slipway's example for the go1 runtime, the standard library only.
//
//	GET /            "Hello from go1-hello"
//	GET /version     the Go version it was built with
//	GET /env/<NAME>  the value of env var NAME (404 when unset)
//
// Listens on $PORT (App Runner sets it; default 8080) and stops cleanly on SIGTERM.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/":
			fmt.Fprintln(w, "Hello from go1-hello")
		case r.URL.Path == "/version":
			fmt.Fprintln(w, runtime.Version())
		case strings.HasPrefix(r.URL.Path, "/env/"):
			value, ok := os.LookupEnv(strings.TrimPrefix(r.URL.Path, "/env/"))
			if !ok {
				http.Error(w, "not set", http.StatusNotFound)
				return
			}
			fmt.Fprintln(w, value)
		default:
			http.NotFound(w, r)
		}
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	server := &http.Server{Addr: ":" + port, Handler: mux}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM)
		<-stop
		server.Shutdown(context.Background())
	}()
	log.Printf("go1-hello: listening on port %s", port)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
