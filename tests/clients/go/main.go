// A Go client of licenseproxy.v1, built by tests/test_api_clients.py from stubs generated
// from protos/: AcquireLicense with a token and a challenge, then a request whose key id
// hint is too short. Prints one JSON line of what it saw.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"time"

	lp "drmlicenseproxy/gen/go/licenseproxy/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func main() {
	challenge, err := base64.StdEncoding.DecodeString(os.Args[3])
	if err != nil {
		panic(err)
	}
	conn, err := grpc.Dial(os.Args[1], grpc.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := lp.NewLicenseProxyServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	request := &lp.AcquireLicenseRequest{
		DrmSystem: lp.DrmSystem_DRM_SYSTEM_CLEARKEY,
		Challenge: challenge,
		Token:     os.Args[2],
	}
	var issuedTrailer metadata.MD
	response, err := client.AcquireLicense(ctx, request, grpc.Trailer(&issuedTrailer))
	if err != nil {
		panic(err)
	}
	request.KeyIds = [][]byte{[]byte("short")}
	var trailer metadata.MD
	_, refused := client.AcquireLicense(ctx, request, grpc.Trailer(&trailer))
	refusal := status.Convert(refused)
	details := []string{}
	for _, detail := range refusal.Proto().GetDetails() {
		details = append(details, detail.GetTypeUrl())
	}
	out, _ := json.Marshal(map[string]interface{}{
		"license":                   base64.StdEncoding.EncodeToString(response.GetLicense()),
		"request_id":                response.GetRequestId(),
		"issued_trailer_request_id": issuedTrailer.Get("x-request-id"),
		"policy":                    response.GetPolicy(),
		"error_code":                refusal.Code().String(),
		"error_details":             details,
		"trailer_request_id":        trailer.Get("x-request-id"),
	})
	os.Stdout.Write(append(out, '\n'))
}
