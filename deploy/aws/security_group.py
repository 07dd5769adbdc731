"""Creates the security group that cluster.yaml's nodes use, once, and prints its id (for SecurityGroupIds).

    python deploy/aws/security_group.py --region us-west-2 --ssh-cidr 203.0.113.7/32

It lets in SSH from your address only (``ray up``, ``ray dashboard`` and ``ray attach`` all go through SSH) and
any traffic between the cluster's own nodes; nothing else, and nothing from 0.0.0.0/0. Ray's launcher, given no
group, would create one with SSH open to every address. A second run finds the group and checks its rules.
Needs boto3 and AWS credentials (the same that ``ray up`` uses).
"""

import argparse
import ipaddress
import sys

import boto3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", required=True)
    parser.add_argument("--ssh-cidr", required=True, help="the addresses SSH is allowed from, e.g. YOUR.IP/32")
    parser.add_argument("--name", default="transfer-grids")
    parser.add_argument("--vpc", help="the VPC (default: the region's default VPC)")
    args = parser.parse_args()
    try:
        cidr = ipaddress.ip_network(args.ssh_cidr)
    except ValueError as error:
        print(f"error: --ssh-cidr {args.ssh_cidr}: {error}", file=sys.stderr)
        return 2
    if cidr.prefixlen == 0:
        print(
            f"error: --ssh-cidr {cidr} is every address: give yours, e.g. $(curl -s https://checkip.amazonaws.com)/32",
            file=sys.stderr,
        )
        return 2
    ec2 = boto3.client("ec2", region_name=args.region)
    vpc = args.vpc or ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [args.name]}, {"Name": "vpc-id", "Values": [vpc]}]
    )["SecurityGroups"]
    if found:
        group = found[0]
        world = [rule for rule in group["IpPermissions"]
                 if any(r["CidrIp"] == "0.0.0.0/0" for r in rule.get("IpRanges", []))
                 or any(r["CidrIpv6"] == "::/0" for r in rule.get("Ipv6Ranges", []))]  # fmt: skip
        if world:
            print(f"error: security group {group['GroupId']} ({args.name}) lets in every address: {world}. Remove "
                  "those rules, or give another --name", file=sys.stderr)  # fmt: skip
            return 1
        print(f"security group {args.name} exists in {vpc}", file=sys.stderr)
        print(group["GroupId"])
        return 0
    group_id = ec2.create_security_group(
        GroupName=args.name, VpcId=vpc, Description="transfer-grids Ray cluster: SSH from one CIDR, nodes to nodes"
    )["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": str(cidr), "Description": "SSH for ray up, ray dashboard, ray attach"}]},
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id, "Description": "Ray between the nodes"}]},
    ])  # fmt: skip
    print(
        f"created security group {args.name} in {vpc}; put its id in cluster.yaml's SecurityGroupIds", file=sys.stderr
    )
    print(group_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
