import Crypto
import Foundation
import X509

/// The injector's TLS material: a CA (its certificate becomes the webhook configuration's
/// `caBundle`) and a serving certificate for the injector Service's DNS names, signed by it.
public struct WebhookCertificates: Sendable, Equatable {
    public var caCertificatePEM: String
    public var certificatePEM: String
    public var privateKeyPEM: String

    public init(caCertificatePEM: String, certificatePEM: String, privateKeyPEM: String) {
        self.caCertificatePEM = caCertificatePEM
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// The names the API server may use for the Service: it calls
    /// `<service>.<namespace>.svc`, and Go's TLS checks that name against the SANs only.
    public static func dnsNames(service: String, namespace: String) -> [String] {
        [service, "\(service).\(namespace)", "\(service).\(namespace).svc", "\(service).\(namespace).svc.cluster.local"]
    }

    /// A new P-256 CA and serving certificate, valid from an hour ago (clock skew between this
    /// machine and the cluster) for ten years: an expired webhook certificate fails open and
    /// silently stops injection, so rotation is left to re-running `meshtrace install`.
    public static func generate(service: String, namespace: String, now: Date = Date()) throws -> WebhookCertificates {
        let notBefore = now.addingTimeInterval(-3600)
        let notAfter = now.addingTimeInterval(3650 * 24 * 3600)

        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("meshtrace")
            CommonName("meshtrace-injector-ca")
        }
        let caPublicKey = Certificate.PublicKey(caKey.publicKey)
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: caPublicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: caPublicKey)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))

        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = try DistinguishedName {
            OrganizationName("meshtrace")
            CommonName("\(service).\(namespace).svc")
        }
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(dnsNames(service: service, namespace: namespace).map { .dnsName($0) })
                AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))

        return WebhookCertificates(
            caCertificatePEM: try ca.serializeAsPEM().pemString + "\n",
            certificatePEM: try leaf.serializeAsPEM().pemString + "\n",
            privateKeyPEM: key.pemRepresentation + "\n")
    }

    /// `ca.crt`, `tls.crt` and `tls.key` from a directory (cert-manager's and
    /// `kubernetes.io/tls` Secrets' names), checked to parse and to belong together.
    public static func load(directory: String) throws -> WebhookCertificates {
        func read(_ name: String) throws -> String {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw InjectorError("--cert-dir: cannot read \(path) (the directory needs ca.crt, tls.crt and tls.key in PEM)")
            }
            return text
        }
        let certs = WebhookCertificates(caCertificatePEM: try read("ca.crt"), certificatePEM: try read("tls.crt"), privateKeyPEM: try read("tls.key"))
        try certs.check(directory: directory)
        return certs
    }

    func check(directory: String) throws {
        let ca: Certificate
        let leaf: Certificate
        do { ca = try Certificate(pemEncoded: caCertificatePEM) } catch { throw InjectorError("--cert-dir: \(directory)/ca.crt is not a PEM certificate: \(error)") }
        do { leaf = try Certificate(pemEncoded: certificatePEM) } catch { throw InjectorError("--cert-dir: \(directory)/tls.crt is not a PEM certificate: \(error)") }
        let key: Certificate.PrivateKey
        do { key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM) } catch { throw InjectorError("--cert-dir: \(directory)/tls.key is not a PEM private key: \(error)") }
        guard key.publicKey == leaf.publicKey else { throw InjectorError("--cert-dir: tls.key is not the key of tls.crt") }
        guard leaf.issuer == ca.subject else { throw InjectorError("--cert-dir: tls.crt was not issued by ca.crt (issuer \(leaf.issuer), CA \(ca.subject))") }
    }
}
