//! Connections to target clusters: the management cluster's, and each Region's from the shared
//! regional clusters (`crate::informer::RegionalClusters`).

use super::*;

impl Engine {
    pub(super) async fn region_object(&self, region: &str) -> Result<Arc<Value>, DistributionError> {
        // The Region as the shared watch holds it; read by name while that has not listed.
        let listed = WatchSpec::known(&Gvk::region(), Trim::Common)
            .and_then(|spec| self.informers.management.get(&spec, None, region));
        match listed {
            Some(Some(r)) => return Ok(r),
            Some(None) => return Err(DistributionError::RegionNotFound { region: region.to_string() }),
            None => {}
        }
        let (region_ar, _) = known_resource(&Gvk::region()).unwrap_or_else(|| {
            (kube::api::ApiResource::from_gvk(&super::super::cluster::to_kube_gvk(&Gvk::region())), false)
        });
        let api: Api<DynamicObject> = Api::all_with(self.mgmt.clone(), &region_ar);
        match api.get_opt(region).await {
            Ok(Some(r)) => Ok(Arc::new(to_value(&r))),
            Ok(None) => Err(DistributionError::RegionNotFound { region: region.to_string() }),
            Err(e) => Err(DistributionError::api(format!("read Region {region}"), e)),
        }
    }

    /// The connection to a target cluster, built from the Region's kubeconfig on first use.
    pub async fn connection(&self, target: &Cluster) -> Result<Arc<ClusterConn>, DistributionError> {
        let region = match target {
            Cluster::Management => return Ok(Arc::clone(&self.mgmt_conn)),
            Cluster::Region(r) => r,
        };
        // The map's lock is held only to find the slot; the build (API reads) runs outside it.
        let mut slot = Arc::clone(lock(&self.regions).entry(region.clone()).or_default());
        let replaced = slot
            .get()
            .and_then(|conn| conn.regional.as_ref())
            .is_some_and(|built| self.informers.regions.replaced(region, built));
        if replaced {
            // The shared regional cluster was rebuilt (the admission index found its watches
            // failing, or its kubeconfig changed): follow it, so the Region keeps one set of
            // watches. Its Credentials were not waiting on this connection: nothing to enqueue.
            self.drop_region(region).await;
            slot = Arc::clone(lock(&self.regions).entry(region.clone()).or_default());
        }
        slot.get_or_try_init(|| self.build_connection(target)).await.map(Arc::clone)
    }

    /// Builds a Region's connection from its kubeconfig Secret.
    pub(super) async fn build_connection(&self, target: &Cluster) -> Result<Arc<ClusterConn>, DistributionError> {
        let Cluster::Region(region) = target else { return Ok(Arc::clone(&self.mgmt_conn)) };
        let region_obj = self.region_object(region).await?;
        let source = credential_core::kubeconfig::region_kubeconfig_ref_of(&region_obj, &self.config.system_namespace)?;
        let (ns, name) = (source.namespace.clone(), source.name.clone());
        // A ClusterDeployment Region's kubeconfig lives in the ClusterDeployment's namespace:
        // watched there (the system namespace is watched from the start), so a change rebuilds
        // the client.
        self.ensure_source_watch(&Gvk::secret(), Some(&ns));
        let regional = self.informers.regions.connect(region, &source).await.map_err(|e| match e {
            RegionalError::Read { source, .. } => {
                DistributionError::api(format!("read kubeconfig Secret {ns}/{name} of Region {region}"), source)
            }
            e => DistributionError::RegionKubeconfig { region: region.clone(), detail: e.to_string() },
        })?;
        lock(&self.kubeconfigs)
            .entry((ns, name))
            .or_default()
            .push((region.clone(), Some(regional.secret_version.clone())));
        let conn = ClusterConn::new(
            target.clone(),
            regional.client.clone(),
            Arc::clone(&regional.watches),
            Some(regional),
            self.config.per_cluster_concurrency,
            Arc::clone(&self.on_pis),
        );
        Ok(conn)
    }
}
