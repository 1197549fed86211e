// A Node client of licenseproxy.v1 (TypeScript on @grpc/grpc-js), built by
// tests/test_api_clients.py from stubs ts-proto generated from protos/: AcquireLicense
// with a token and a challenge, then a request whose key id hint is too short. Prints
// one JSON line of what it saw.
import { credentials, Metadata, ServiceError, StatusObject } from "@grpc/grpc-js";
import {
  AcquireLicenseRequest,
  AcquireLicenseResponse,
  DrmSystem,
  LicenseProxyServiceClient,
} from "./gen/licenseproxy/v1/license_proxy";

const [target, token, challenge] = process.argv.slice(2);
const client = new LicenseProxyServiceClient(target, credentials.createInsecure());
const deadline = () => new Date(Date.now() + 10_000);

function acquire(
  request: AcquireLicenseRequest,
): Promise<{ response?: AcquireLicenseResponse; error?: ServiceError; trailers?: Metadata }> {
  return new Promise((resolve) => {
    let response: AcquireLicenseResponse | undefined;
    let error: ServiceError | undefined;
    const call = client.acquireLicense(request, new Metadata(), { deadline: deadline() }, (failed, answer) => {
      response = answer ?? undefined;
      error = failed ?? undefined;
    });
    // The status event comes after the callback and carries the trailers of every answer.
    call.on("status", (status: StatusObject) => resolve({ response, error, trailers: status.metadata }));
  });
}

async function main(): Promise<void> {
  const request = AcquireLicenseRequest.fromPartial({
    drmSystem: DrmSystem.DRM_SYSTEM_CLEARKEY,
    challenge: Buffer.from(challenge, "base64"),
    token,
  });
  const issued = await acquire(request);
  if (issued.error || !issued.response) {
    throw issued.error ?? new Error("no response");
  }
  const refused = await acquire({ ...request, keyIds: [Buffer.from("short")] });
  process.stdout.write(
    JSON.stringify({
      license: Buffer.from(issued.response.license).toString("base64"),
      request_id: issued.response.requestId,
      issued_trailer_request_id: issued.trailers?.get("x-request-id") ?? [],
      policy: issued.response.policy,
      error_code: refused.error?.code,
      trailer_request_id: refused.error?.metadata.get("x-request-id") ?? [],
      has_status_details: refused.error?.metadata.get("grpc-status-details-bin").length === 1,
    }) + "\n",
  );
  client.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
