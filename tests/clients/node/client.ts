// A Node client of licenseproxy.v1 (TypeScript on @grpc/grpc-js), built by
// tests/test_api_clients.py from stubs ts-proto generated from protos/: AcquireLicense
// with a token and a challenge, then a request whose key id hint is too short. Prints
// one JSON line of what it saw.
import { credentials, Metadata, ServiceError } from "@grpc/grpc-js";
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
): Promise<{ response?: AcquireLicenseResponse; error?: ServiceError; header?: Metadata }> {
  return new Promise((resolve) => {
    let header: Metadata | undefined;
    const call = client.acquireLicense(request, new Metadata(), { deadline: deadline() }, (error, response) =>
      resolve({ response: response ?? undefined, error: error ?? undefined, header }),
    );
    call.on("metadata", (received: Metadata) => {
      header = received;
    });
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
      header_request_id: issued.header?.get("x-request-id") ?? [],
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
