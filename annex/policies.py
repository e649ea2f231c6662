"""IAM policy documents for the annex stack, as small awacs factories.

Every statement names the narrowest resources CloudFormation lets us name before they exist: ARNs built
from the stack name (groups are named `<stack>-<n>`), the project bucket, the IAM path of the stack's own
roles, and tags where an action cannot be scoped by ARN.
"""

from awacs import autoscaling, cloudformation, ec2, events, iam, logs, s3
from awacs import awslambda as lambda_
from awacs.aws import Allow, Condition, Deny, PolicyDocument, Principal, Statement, StringEquals
from awacs.aws import Bool as BoolCondition
from awacs.sts import AssumeRole
from troposphere import Sub

ANNEX_TAG = "htcondor:AnnexName"
ROLE_PATH_PREFIX = "/htcondor-annex/"
# The set-up's CloudFormation service role (issue: setup) lives under this path.
SERVICE_ROLE_PATH = "/htcondor-annex-setup/"


def role_path():
    """An IAM path unique to the stack, so policies can name the stack's roles before they exist."""
    return Sub(ROLE_PATH_PREFIX + "${AWS::StackName}/")


def stack_arn():
    return Sub("arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*")


def groups_arn():
    return Sub(
        "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*"
        ":autoScalingGroupName/${AWS::StackName}-?"  # groups are <stack>-1..8; `*` would reach <stack>-x-... annexes
    )


def bucket_arn(bucket):
    return Sub("arn:${AWS::Partition}:s3:::${Bucket}", Bucket=bucket)


def objects_arn(bucket, prefix=""):
    return Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + prefix + "*", Bucket=bucket)


def own_roles_arn(kind="role"):
    return Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:" + kind + ROLE_PATH_PREFIX + "${AWS::StackName}/*")


def assume_role(service):
    """Trust policy: only the named AWS service may assume the role."""
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[Statement(Effect=Allow, Principal=Principal("Service", [service]), Action=[AssumeRole])],
    )


def tls_only(bucket):
    """Bucket policy: refuse every request that does not use TLS."""
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Sid="DenyInsecureTransport",
                Effect=Deny,
                Principal=Principal("*"),
                Action=[s3.Action("*")],
                Resource=[bucket_arn(bucket), objects_arn(bucket)],
                Condition=Condition(BoolCondition("aws:SecureTransport", "false")),
            )
        ],
    )


def instance_policy(bucket, config_prefix):
    """What an annex instance may do: read its project's configuration; leave its own group, shrinking it.

    IAM cannot say "only this very instance" for TerminateInstanceInAutoScalingGroup (its resource is the
    group), so the scope is this annex's groups; the shutdown program passes the instance's own id.
    """
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(Sid="ReadAnnexConfig", Effect=Allow, Action=[s3.GetObject], Resource=[objects_arn(bucket, config_prefix)]),
            Statement(
                Sid="LeaveOwnGroup",
                Effect=Allow,
                Action=[autoscaling.TerminateInstanceInAutoScalingGroup],
                Resource=[groups_arn()],
            ),
        ],
    )


def log_group_arn(name):
    return Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Name}", Name=name)


def lease_policy(bucket, log_group_name):
    """What the lease function may do: end this annex and nothing else.

    Besides its own actions it needs the rights to delete every resource of the stack, because a stack
    without a service role is deleted with the caller's credentials (its role is deleted last).
    """
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Sid="OwnStack",
                Effect=Allow,
                Action=[cloudformation.DescribeStacks, cloudformation.DescribeStackResources, cloudformation.DeleteStack],
                Resource=[stack_arn()],
            ),
            Statement(
                Sid="OwnGroups",
                Effect=Allow,
                Action=[
                    autoscaling.UpdateAutoScalingGroup,
                    autoscaling.DeleteAutoScalingGroup,
                    autoscaling.DeleteScheduledAction,
                    autoscaling.DeleteTags,
                ],
                Resource=[groups_arn()],
            ),
            Statement(
                Sid="DescribeGroups",  # describe calls cannot be scoped by resource
                Effect=Allow,
                Action=[autoscaling.DescribeAutoScalingGroups, autoscaling.DescribeScheduledActions, ec2.DescribeLaunchTemplates, ec2.DescribeSecurityGroups],
                Resource=["*"],
            ),
            Statement(
                Sid="OwnBucket",
                Effect=Allow,
                Action=[s3.ListBucket, s3.ListBucketVersions, s3.DeleteBucket, s3.DeleteBucketPolicy, s3.GetBucketPolicy],
                Resource=[bucket_arn(bucket)],
            ),
            Statement(
                Sid="OwnObjects",
                Effect=Allow,
                Action=[s3.DeleteObject, s3.DeleteObjectVersion],
                Resource=[objects_arn(bucket)],
            ),
            Statement(
                Sid="OwnTaggedEc2",
                Effect=Allow,
                Action=[ec2.DeleteLaunchTemplate, ec2.DeleteSecurityGroup, ec2.RevokeSecurityGroupEgress],
                Resource=["*"],
                Condition=Condition(StringEquals(f"aws:ResourceTag/{ANNEX_TAG}", Sub("${ProjectId}"))),
            ),
            Statement(
                Sid="OwnRoles",
                Effect=Allow,
                Action=[
                    iam.DeleteRole,
                    iam.DeleteRolePolicy,
                    iam.GetRole,
                    iam.RemoveRoleFromInstanceProfile,
                    iam.DeleteInstanceProfile,
                    iam.GetInstanceProfile,
                ],
                Resource=[own_roles_arn("role"), own_roles_arn("instance-profile")],
            ),
            Statement(
                Sid="PassServiceRole",  # a stack with the set-up's service role is deleted with that role
                Effect=Allow,
                Action=[iam.PassRole],
                Resource=[Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role" + SERVICE_ROLE_PATH + "*")],
                Condition=Condition(StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")),
            ),
            Statement(
                Sid="OwnLease",
                Effect=Allow,
                Action=[lambda_.DeleteFunction, lambda_.RemovePermission, lambda_.GetFunction],
                Resource=[Sub("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-lease")],
            ),
            Statement(
                Sid="OwnRule",
                Effect=Allow,
                Action=[events.DeleteRule, events.RemoveTargets, events.DescribeRule],
                Resource=[Sub("arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${AWS::StackName}-lease")],
            ),
            Statement(
                Sid="OwnLogs",
                Effect=Allow,
                Action=[logs.CreateLogStream, logs.PutLogEvents, logs.DeleteLogGroup],
                Resource=[log_group_arn(log_group_name), Sub("${Arn}:*", Arn=log_group_arn(log_group_name))],
            ),
        ],
    )
