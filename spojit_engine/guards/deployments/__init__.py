"""What the credit guard does with Prefect deployments: deploys them bound to a workspace,
switches their schedules off and exactly those back on, takes their webhooks into an ordered
queue, shows their status, and finishes pending work in the background of ``spojit serve``
(README.md)."""

from spojit_engine.lazy import exports

__all__ = [  # pinned by tests/guards/test_faces.py
    "DeployRequest",
    "Deployed",
    "DeploymentStatus",
    "Receipt",
    "Reconciler",
    "Webhooks",
    "deploy_workflow",
    "deployment_statuses",
]
__getattr__ = exports(
    __name__,
    {
        "DeployRequest": "spojit_engine.guards.deployments.deploy",
        "Deployed": "spojit_engine.guards.deployments.deploy",
        "DeploymentStatus": "spojit_engine.guards.deployments.status",
        "Receipt": "spojit_engine.guards.deployments.webhooks",
        "Reconciler": "spojit_engine.guards.deployments.reconciler",
        "Webhooks": "spojit_engine.guards.deployments.webhooks",
        "deploy_workflow": "spojit_engine.guards.deployments.deploy",
        "deployment_statuses": "spojit_engine.guards.deployments.status",
    },
)
