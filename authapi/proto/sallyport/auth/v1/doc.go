// Package authv1 is the generated Go code of the Auth Service's protobuf
// API (auth.proto, package sallyport.auth.v1): messages, the
// AuthServiceClient and the AuthServiceServer interface. Regenerate it with
// scripts/gen-proto; scripts/check-generated fails when it is stale.
//
// Use it through package authapi: authapi.Client.API returns an
// AuthServiceClient whose calls retry and fail over, and authapi.Server
// implements AuthServiceServer with authorization. See authapi's
// documentation for who may call what.
package authv1
