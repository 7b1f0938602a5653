// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus (the library behind Flux's and
// Argo CD-style health checks) computes for Kubernetes objects.
//
// Input on stdin: one or more JSON objects (a whole object, as `kubectl get -o json` prints it).
// Output on stdout: one JSON line per object, {"status": "Current|InProgress|Failed|...",
// "message": "..."}, or {"error": "..."} when kstatus refuses the object. The tests feed it the
// status blocks the operator writes, so what is checked is kstatus's own reading, not ours.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type answer struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func main() {
	decoder := json.NewDecoder(os.Stdin)
	encoder := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			fmt.Fprintf(os.Stderr, "kstatus: reading a JSON object from stdin: %v\n", err)
			os.Exit(2)
		}
		// Kubernetes' own decoder: integers stay int64 (metadata.generation), as the API machinery reads them.
		var object map[string]interface{}
		if err := utiljson.Unmarshal(raw, &object); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: decoding a JSON object: %v\n", err)
			os.Exit(2)
		}
		var out answer
		result, err := status.Compute(&unstructured.Unstructured{Object: object})
		if err != nil {
			out.Error = err.Error()
		} else {
			out.Status = result.Status.String()
			out.Message = result.Message
		}
		if err := encoder.Encode(out); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: writing the answer: %v\n", err)
			os.Exit(2)
		}
	}
}
