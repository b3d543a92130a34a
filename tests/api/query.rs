//! GetCall and ListCalls.

use std::collections::HashSet;

use serde_json::json;
use switchboard::proto::v1 as pb;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn get_call_returns_not_found_for_an_unknown_call() {
    let server = TestServer::memory().await;
    let err = server
        .call_client()
        .await
        .get_call(pb::GetCallRequest { call_id: "sf:nope".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = server.call_client().await.get_call(pb::GetCallRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}

async fn list(
    calls: &mut switchboard::proto::v1::call_service_client::CallServiceClient<tonic::transport::Channel>,
    filter: pb::ListCallsFilter,
    size: i32,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let resp = calls
            .list_calls(pb::ListCallsRequest {
                filter: Some(filter.clone()),
                page_size: size,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(resp.calls.iter().map(|c| c.call_id.clone()).collect());
        if resp.next_page_token.is_empty() {
            return pages;
        }
        token = resp.next_page_token;
    }
}

#[tokio::test]
async fn list_calls_pages_newest_first_until_an_empty_token() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    start_calls(&mut ingest, "c", 7).await;
    let mut calls = server.call_client().await;
    let pages = list(&mut calls, pb::ListCallsFilter::default(), 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
    let flat: Vec<String> = pages.concat();
    assert_eq!(flat, (0..7).rev().map(|i| format!("sf:c-{i}")).collect::<Vec<_>>());
    assert_eq!(flat.iter().collect::<HashSet<_>>().len(), 7);
    // The default page size holds them all.
    assert_eq!(list(&mut calls, pb::ListCallsFilter::default(), 0).await, vec![flat]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn list_calls_filters_by_state_and_direction() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callstarted", "in-active", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "callstarted", "out-ended", json!({"callType": "outbound"})).await;
    ingest_sf(&mut ingest, "callended", "out-ended", json!({})).await;
    let mut calls = server.call_client().await;
    let state = |s: pb::CallStateFilter| pb::ListCallsFilter { state: s as i32, ..Default::default() };
    assert_eq!(list(&mut calls, state(pb::CallStateFilter::Active), 10).await, vec![vec!["sf:in-active"]]);
    assert_eq!(list(&mut calls, state(pb::CallStateFilter::Ended), 10).await, vec![vec!["sf:out-ended"]]);
    let outbound = pb::ListCallsFilter { direction: pb::Direction::Outbound as i32, ..Default::default() };
    assert_eq!(list(&mut calls, outbound, 10).await, vec![vec!["sf:out-ended"]]);
    let xelion = pb::ListCallsFilter { vendor: pb::Vendor::Xelion as i32, ..Default::default() };
    assert_eq!(list(&mut calls, xelion, 10).await, vec![Vec::<String>::new()]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_page_token_only_continues_its_own_listing() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    start_calls(&mut ingest, "c", 3).await;
    let mut calls = server.call_client().await;
    let first =
        calls.list_calls(pb::ListCallsRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert!(!first.next_page_token.is_empty());
    let other_filter = pb::ListCallsRequest {
        page_size: 1,
        page_token: first.next_page_token.clone(),
        filter: Some(pb::ListCallsFilter { state: pb::CallStateFilter::Ended as i32, ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(calls.list_calls(other_filter).await.unwrap_err().code(), Code::InvalidArgument);
    let garbage = pb::ListCallsRequest { page_token: "not-a-token".into(), ..Default::default() };
    assert_eq!(calls.list_calls(garbage).await.unwrap_err().code(), Code::InvalidArgument);
    let negative = pb::ListCallsRequest { page_size: -1, ..Default::default() };
    assert_eq!(calls.list_calls(negative).await.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}
