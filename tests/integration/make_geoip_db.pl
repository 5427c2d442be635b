#!/usr/bin/perl
# Builds a small GeoLite2-City-shaped MaxMind database for dnsd's GeoDNS tests, with
# MaxMind::DB::Writer (Debian's libmaxmind-db-writer-perl).
# Usage: make_geoip_db.pl OUT.mmdb [NETWORKS.csv]
# Without a CSV, the networks are the invented test data below (see test_dnsd_geo.py for what each
# one stands for). A CSV has lines "network,country,continent" (country may be empty); lines
# starting with # are comments. `make run` builds its demo database from deploy/demo/geoip.csv.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift or die "usage: $0 OUT.mmdb [NETWORKS.csv]\n";
my $csv = shift;
my %types = (
	country            => 'map',
	registered_country => 'map',
	continent          => 'map',
	iso_code           => 'utf8_string',
	code               => 'utf8_string',
	names              => 'map',
	en                 => 'utf8_string',
);
my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version               => 6,
	record_size              => 24,
	database_type            => 'GeoLite2-City',
	languages                => ['en'],
	description              => { en => 'Defenra dnsd test database' },
	map_key_type_callback    => sub { $types{ $_[0] } },
	remove_reserved_networks => 0,
	alias_ipv6_to_ipv4       => 1,
);
my @nets = (
	[ '81.10.0.0/16',   'DE', 'EU' ],
	[ '82.10.0.0/16',   'FR', 'EU' ],
	[ '83.10.0.0/16',   'PL', 'EU' ],
	[ '84.10.0.0/16',   'US', 'NA' ],
	[ '85.10.0.0/16',   'BR', 'SA' ],
	[ '86.10.0.0/16',   'NZ', 'OC' ],
	[ '87.10.0.0/16',   'JP', 'AS' ],
	[ '88.10.0.0/16',   undef, 'EU' ],
	[ '89.10.0.0/16',   'IS', 'EU' ],
	[ '90.10.0.0/16',   'CL', 'SA' ],
	[ '91.10.0.0/16',   'IN', 'AS' ],
	[ '127.0.0.0/8',    'JP', 'AS' ],
	[ '2a00:1450::/32', 'DE', 'EU' ],
	[ '2600:1f00::/32', 'US', 'NA' ],
);
if (defined $csv) {
	open my $in, '<', $csv or die "$csv: $!\n";
	@nets = ();
	while (my $line = <$in>) {
		chomp $line;
		next if $line =~ /^\s*(#|$)/;
		my ($net, $cc, $cont) = split /\s*,\s*/, $line;
		die "$csv: bad line: $line\n" unless defined $cont && $cont =~ /^[A-Z]{2}$/;
		push @nets, [ $net, ($cc // '') eq '' ? undef : $cc, $cont ];
	}
	close $in;
}
for my $n (@nets) {
	my ($net, $cc, $cont) = @$n;
	my %rec = (continent => { code => $cont, names => { en => $cont } });
	$rec{country} = { iso_code => $cc, names => { en => $cc } } if defined $cc;
	$tree->insert_network($net, \%rec);
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
