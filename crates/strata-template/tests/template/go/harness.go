// The reference renderer of the differential tests: Go's text/template with Sprig's
// TxtFuncMap, as werf renders werf.yaml. Reads a JSON array of {"template", "data"} on
// stdin and writes a JSON array of {"ok", "out", "err"} on stdout, one per case, so one
// process renders the whole corpus.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"text/template"

	"github.com/Masterminds/sprig"
)

type input struct {
	Template string                 `json:"template"`
	Data     map[string]interface{} `json:"data"`
}

type output struct {
	Ok  bool   `json:"ok"`
	Out string `json:"out"`
	Err string `json:"err"`
}

func render(in input) (out output) {
	defer func() {
		if r := recover(); r != nil {
			out = output{Err: "panic"}
		}
	}()
	t, err := template.New("t").Funcs(sprig.TxtFuncMap()).Parse(in.Template)
	if err != nil {
		return output{Err: err.Error()}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, in.Data); err != nil {
		return output{Err: err.Error()}
	}
	return output{Ok: true, Out: buf.String()}
}

func main() {
	var cases []input
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		os.Stderr.WriteString("bad input: " + err.Error() + "\n")
		os.Exit(2)
	}
	outs := make([]output, len(cases))
	for i, c := range cases {
		outs[i] = render(c)
	}
	if err := json.NewEncoder(os.Stdout).Encode(outs); err != nil {
		os.Exit(2)
	}
}
